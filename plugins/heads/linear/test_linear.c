#include <criterion/criterion.h>
Test(linear, stub) {}
