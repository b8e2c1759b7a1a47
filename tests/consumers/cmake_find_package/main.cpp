// A program that uses facenet through CMake find_package.
#include <facenet/facenet.hpp>

#include "../common/consumer_check.hpp"

int main() { return consumer::run("CMake find_package"); }
