// A second translation unit that includes everything: a header function that is not `inline`
// (or a non-inline variable) would now be defined twice and the link would fail.
#include <facenet/facenet.hpp>

int second_tu_version_major() { return facenet::version_major; }
