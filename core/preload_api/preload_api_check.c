/* SPDX-License-Identifier: MIT */
/*
 * preload_api_check.c -- compiled, never linked: preload_api.h next to the internal headers
 * whose declarations it repeats. A declaration that no longer matches its original (a changed
 * parameter, return type or attribute) is a conflicting-types error here, so the shim's view
 * of core cannot drift from core itself.
 */
#include "heap.h"
#include "filecheck.h"
#include "loglock.h"
#include "roots.h"
#include "rvm_int.h"
#include "track.h"
#include "commit_override.h"

#include "preload_api.h"

/* Something to compile besides the headers (an object with no definitions is still built). */
int preload_api_check_built;
