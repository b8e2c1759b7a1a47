// A program that uses facenet through pkg-config.
#include <facenet/facenet.hpp>

#include "../common/consumer_check.hpp"

int main() { return consumer::run("pkg-config"); }
