#include "heap_test.h"
