// A program that uses facenet through CMake add_subdirectory, built from two translation units.
#include <facenet/facenet.hpp>

#include "../common/consumer_check.hpp"

int second_tu_version_major();

int main() {
  if (second_tu_version_major() != FACENET_VERSION_MAJOR) return 1;
  return consumer::run("CMake add_subdirectory");
}
