// Umbrella header: everything facenet offers. Include the fine-grained headers instead to compile less.
#pragma once

#include "facenet/version.hpp"

#include "facenet/core/eigen.hpp"
#include "facenet/core/error.hpp"
#include "facenet/core/parallel.hpp"
#include "facenet/core/shape.hpp"
#include "facenet/core/simd.hpp"
#include "facenet/core/tensor.hpp"

#include "facenet/io/tensor_map.hpp"
