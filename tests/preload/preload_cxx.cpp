/* SPDX-License-Identifier: MIT */
// preload_cxx.cpp -- an unmodified C++ program (std::map, std::string, std::vector, exceptions)
// whose output must be identical with and without the shim.
#include <cstdio>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

int main()
{
  std::map<std::string, std::vector<int>> m;
  unsigned x = 12345;
  for (int i = 0; i < 200000; i++) {
    x = x * 1103515245u + 12345u;
    std::string k = "key" + std::to_string((x >> 8) % 5000);
    m[k].push_back(i);
    if (m[k].size() > 50)
      m.erase(k);
  }
  unsigned long sum = 0;
  for (auto &kv : m)
    for (int v : kv.second)
      sum += (unsigned long)v * kv.first.size();
  std::unique_ptr<std::string> s(new std::string(1 << 20, 'z'));
  int caught = 0;
  try {
    throw std::runtime_error("thrown through the shim's malloc");
  } catch (const std::exception &e) {
    caught = std::string(e.what()).size() > 0;
  }
  std::printf("keys %zu sum %lu big %zu caught %d\n", m.size(), sum, s->size(), caught);
  return 0;
}
