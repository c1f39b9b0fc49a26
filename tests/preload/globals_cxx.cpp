/* SPDX-License-Identifier: MIT */
// globals_cxx.cpp -- an unmodified C++ program whose state is a global std::map (constructed
// before main, destroyed after it) holding std::strings in the heap. Under the shim with a
// segment, each run adds one entry: the map must come back with all earlier entries intact.
// std::cout is libstdc++'s, copy-relocated into our .bss: it must keep working after a restart.
#include <iostream>
#include <map>
#include <string>

std::map<int, std::string> entries;
static std::string motto = "a global std::string long enough to live in the heap, not inline";

int main()
{
  int k = static_cast<int>(entries.size());
  entries[k] = "entry " + std::to_string(k) + " with a tail long enough to be heap allocated";
  bool ok = motto.size() > 20;
  for (const auto &kv : entries)
    ok = ok && kv.second == "entry " + std::to_string(kv.first) +
                                " with a tail long enough to be heap allocated";
  std::cout << "entries " << entries.size() << " intact " << (ok ? "yes" : "NO") << std::endl;
  return ok ? 0 : 1;
}
