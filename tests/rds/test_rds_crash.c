/* placeholder replaced below */
#include "rds_test.h"
Test(rds_crash, placeholder) {}
