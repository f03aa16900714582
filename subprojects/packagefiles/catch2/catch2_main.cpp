// The test runner's main, compiled once (cojob's overlay for the Catch2 wrap).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
