// A program that uses facenet through Meson subproject.
#include <facenet/facenet.hpp>

#include "../common/consumer_check.hpp"

int main() { return consumer::run("Meson subproject"); }
