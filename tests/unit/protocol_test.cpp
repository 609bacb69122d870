#include <gtest/gtest.h>
TEST(Protocol, Placeholder) {}
