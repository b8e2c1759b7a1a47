// A program that uses facenet through CMake FetchContent.
#include <facenet/facenet.hpp>

#include "../common/consumer_check.hpp"

int main() { return consumer::run("CMake FetchContent"); }
