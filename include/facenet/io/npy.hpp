// NumPy .npy (format versions 1, 2, 3) and .npz, including object arrays whose payload is a pickled
// object (davidsandberg's MTCNN det*.npy: a dict layer -> {weights, biases, alpha} of ndarrays,
// pickled by Python 2 with protocol 2). Spec: numpy.lib.format.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/io/binary.hpp"
#include "facenet/io/mmap_file.hpp"
#include "facenet/io/pickle.hpp"
#include "facenet/io/tensor_map.hpp"
#include "facenet/io/zip.hpp"

namespace facenet::io {

struct npy_header {
  std::string descr;  // e.g. "<f4", "|O"
  bool fortran_order = false;
  shape dims;
  std::uint64_t data_offset = 0;
};

namespace detail {

// Parses the Python literal dict numpy writes as the header, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
class npy_header_parser {
 public:
  npy_header_parser(const std::string& text, std::string what) : s_(text), what_(std::move(what)) {}

  npy_header parse() {
    npy_header h;
    bool seen_descr = false, seen_order = false, seen_shape = false;
    expect('{');
    while (peek() != '}') {
      const std::string key = string_literal();
      expect(':');
      if (key == "descr") {
        if (peek() != '\'' && peek() != '"') fail("structured dtypes are not supported");
        h.descr = string_literal();
        seen_descr = true;
      } else if (key == "fortran_order") {
        h.fortran_order = boolean();
        seen_order = true;
      } else if (key == "shape") {
        h.dims = tuple_of_ints();
        seen_shape = true;
      } else {
        fail("unexpected key '" + key + "'");
      }
      if (peek() == ',') ++pos_;
    }
    ++pos_;
    if (!seen_descr || !seen_order || !seen_shape) fail("header must hold descr, fortran_order and shape");
    skip_ws();
    if (pos_ != s_.size()) fail("trailing characters");
    return h;
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const {
    throw format_error(what_ + ": bad .npy header at character " + std::to_string(pos_) + ": " + msg);
  }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t')) ++pos_;
  }
  char peek() {
    skip_ws();
    if (pos_ >= s_.size()) fail("unexpected end");
    return s_[pos_];
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string string_literal() {
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a string");
    const std::size_t end = s_.find(q, ++pos_);
    if (end == std::string::npos) fail("unterminated string");
    std::string v = s_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return v;
  }
  bool boolean() {
    peek();
    for (const bool value : {true, false}) {
      const std::string word = value ? "True" : "False";
      if (s_.compare(pos_, word.size(), word) == 0) {
        pos_ += word.size();
        return value;
      }
    }
    fail("expected True or False");
  }
  shape tuple_of_ints() {
    shape dims;
    expect('(');
    while (peek() != ')') {
      std::uint64_t v = 0;
      const std::size_t start = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
        v = v * 10 + static_cast<unsigned>(s_[pos_++] - '0');
        if (v > (1ull << 48)) fail("dimension too large");
      }
      if (pos_ == start) fail("expected a dimension");
      if (dims.rank() == shape::max_rank) throw unsupported_error(what_ + ": more than " + std::to_string(shape::max_rank) + " dimensions");
      dims.push_back(static_cast<std::int64_t>(v));
      if (peek() == ',') ++pos_;
    }
    ++pos_;
    return dims;
  }

  const std::string& s_;
  std::string what_;
  std::size_t pos_ = 0;
};

// numpy type string without byte order ("f4", "i8", "b1", ...) -> element type.
inline element_type numpy_element_type(const std::string& code, const std::string& what) {
  static const std::pair<const char*, element_type> table[] = {
      {"f2", element_type::f16}, {"f4", element_type::f32}, {"f8", element_type::f64}, {"i1", element_type::i8},
      {"u1", element_type::u8},  {"i2", element_type::i16}, {"i4", element_type::i32}, {"i8", element_type::i64},
      {"b1", element_type::boolean}};
  for (const auto& e : table)
    if (code == e.first) return e.second;
  throw unsupported_error(what + ": unsupported numpy dtype '" + code + "'");
}

// "<f4" -> f32; big-endian data is refused rather than silently misread.
inline element_type numpy_descr_type(const std::string& descr, const std::string& what) {
  FACENET_CHECK(descr.size() >= 2, format_error, what + ": bad dtype descr '" + descr + "'");
  const char order = descr[0];
  FACENET_CHECK(order != '>', unsupported_error, what + ": big-endian dtype '" + descr + "' is not supported");
  FACENET_CHECK(order == '<' || order == '|' || order == '=', format_error, what + ": bad dtype descr '" + descr + "'");
  return numpy_element_type(descr.substr(1), what);
}

}  // namespace detail

// Reads the magic, version and header; leaves the reader at the array data.
inline npy_header read_npy_header(span_reader& r) {
  static const char magic[] = "\x93NUMPY";
  FACENET_CHECK(r.remaining() >= 10 && std::memcmp(r.take(6, "magic"), magic, 6) == 0, format_error,
                r.what() + ": not a .npy file (bad magic)");
  const std::uint8_t major = r.byte("major version");
  r.byte("minor version");
  FACENET_CHECK(major >= 1 && major <= 3, unsupported_error, r.what() + ": unsupported .npy format version " + std::to_string(major));
  const std::uint64_t len = major == 1 ? r.read<std::uint16_t>("header length") : r.read<std::uint32_t>("header length");
  const std::string text = r.string(len, "header");
  npy_header h = detail::npy_header_parser(text, r.what()).parse();
  h.data_offset = r.position();
  return h;
}

namespace detail {

// An ndarray as numpy pickles it: _reconstruct(ndarray, (0,), b'b') then BUILD with
// (version, shape, dtype, is_fortran, rawdata). Decoded to float (numeric dtypes only).
inline named_tensor decode_pickled_ndarray(const pickle_tree& t, std::size_t i, const std::string& name,
                                          pickle_walk_budget& budget) {
  const std::string what = t.what() + ": array '" + name + "'";
  const pickle_node& obj = t.expect(i, pickle_kind::object, what);
  FACENET_CHECK(obj.text == "numpy.core.multiarray._reconstruct" || obj.text == "numpy._core.multiarray._reconstruct", format_error,
                what + ": expected a pickled numpy array, found a call of " + obj.text);
  FACENET_CHECK(obj.state != pickle_node::npos, format_error, what + ": ndarray without state");
  const auto& st = t.sequence(obj.state, 5, what + " state");
  shape dims;
  for (std::size_t d : t.sequence(st[1], what + " shape")) {
    FACENET_CHECK(dims.rank() < shape::max_rank, unsupported_error, what + ": too many dimensions");
    const std::int64_t v = t.as_int(d, what + " dimension");
    FACENET_CHECK(v >= 0, format_error, what + ": negative dimension");
    dims.push_back(v);
  }
  const pickle_node& dt = t.expect(st[2], pickle_kind::object, what + " dtype");
  FACENET_CHECK(dt.text == "numpy.dtype" && dt.state != pickle_node::npos, format_error, what + ": bad dtype object");
  const std::string code = t.as_str(t.sequence(dt.items[0], what + " dtype args").at(0), what + " dtype code");
  const auto& dstate = t.sequence(dt.state, what + " dtype state");
  FACENET_CHECK(dstate.size() >= 2, format_error, what + ": bad dtype state");
  const element_type type = numpy_descr_type(t.as_str(dstate[1], what + " byte order") + code, what);
  const bool fortran = t.as_bool(st[3], what + " fortran flag");
  const std::string raw = t.as_bytes(st[4], what + " data");
  const std::uint64_t numel = shape_numel(dims, what);
  FACENET_CHECK(raw.size() == checked_mul(numel, element_size(type), what), format_error,
                what + ": " + std::to_string(raw.size()) + " data bytes for shape " + dims.str() + " of " + code);
  budget.charge_output(numel, what);
  const byte_span span{reinterpret_cast<const std::uint8_t*>(raw.data()), raw.size()};
  return {name, decode_tensor(span, type, dims, 0, contiguous_strides(dims, fortran), what), element_type_name(type)};
}

// Adds every ndarray in a (nested) dict, names joined with '/': {"conv1": {"weights": a}} -> "conv1/weights".
inline void flatten_pickled_dict(const pickle_tree& t, std::size_t i, const std::string& prefix, tensor_map& out, int depth,
                                 pickle_walk_budget& budget) {
  FACENET_CHECK(depth < 8, format_error, t.what() + ": dictionaries nested deeper than 8");
  budget.charge_visit();
  const pickle_node& d = t.expect(i, pickle_kind::dict, prefix.empty() ? "top-level object" : "'" + prefix + "'");
  for (std::size_t k = 0; k + 1 < d.items.size(); k += 2) {
    const std::string key = t.as_str(d.items[k], "dictionary key");
    const std::string name = prefix.empty() ? key : prefix + "/" + key;
    budget.charge_visit();  // each entry, leaf or not: a shared dict of arrays would otherwise be decoded over and over
    if (t.node(d.items[k + 1]).kind == pickle_kind::dict) {
      flatten_pickled_dict(t, d.items[k + 1], name, out, depth + 1, budget);
    } else {
      named_tensor nt = decode_pickled_ndarray(t, d.items[k + 1], name, budget);
      out.add(std::move(nt.name), std::move(nt.value), std::move(nt.source_dtype));
    }
  }
}

}  // namespace detail

// A numeric .npy image -> tensor (Fortran order is reordered to C order).
inline named_tensor parse_npy_array(byte_span bytes, const std::string& what, const std::string& name) {
  span_reader r(bytes, what);
  const npy_header h = read_npy_header(r);
  FACENET_CHECK(h.descr != "|O", format_error, what + ": holds an object array (use load_npy for pickled dicts)");
  const element_type type = detail::numpy_descr_type(h.descr, what);
  const std::uint64_t need = checked_mul(shape_numel(h.dims, what), element_size(type), what);
  FACENET_CHECK(r.remaining() == need, format_error,
                what + ": shape " + h.dims.str() + " of " + h.descr + " needs " + std::to_string(need) + " data bytes, file has " +
                    std::to_string(r.remaining()));
  return {name, decode_tensor(r.span(need, "array data"), type, h.dims, 0, contiguous_strides(h.dims, h.fortran_order), what),
          element_type_name(type)};
}

// Any .npy image -> tensor_map: a numeric array becomes one tensor called `name`; an object array
// holding a pickled dict becomes its ndarrays named "outer/inner".
inline tensor_map parse_npy(byte_span bytes, const std::string& what, const std::string& name = "array") {
  span_reader r(bytes, what);
  const npy_header h = read_npy_header(r);
  tensor_map out;
  if (h.descr != "|O") {
    named_tensor nt = parse_npy_array(bytes, what, name);
    out.add(std::move(nt.name), std::move(nt.value), std::move(nt.source_dtype));
    return out;
  }
  FACENET_CHECK(h.dims.rank() == 0, unsupported_error,
                what + ": object array of shape " + h.dims.str() + " (only a single pickled object is supported)");
  const pickle_tree t = unpickle(r.span(r.remaining(), "pickle"), what);
  // The payload is the 0-d object ndarray itself; its data list holds the one object.
  const pickle_node& arr = t.expect(t.root(), pickle_kind::object, "object array");
  FACENET_CHECK(arr.state != pickle_node::npos, format_error, what + ": object ndarray without state");
  const auto& st = t.sequence(arr.state, 5, "object ndarray state");
  const auto& objects = t.sequence(st[4], 1, "object ndarray data");
  pickle_walk_budget budget(t, bytes.size);
  detail::flatten_pickled_dict(t, objects[0], "", out, 0, budget);
  return out;
}

inline tensor_map load_npy(const std::string& path) {
  const mapped_file file(path);
  return parse_npy(file.bytes(), path);
}

// .npz: a zip of .npy members (stored or deflated); tensor names are the member names without ".npy".
inline tensor_map parse_npz(byte_span bytes, const std::string& what) {
  const zip_archive z(bytes, what);
  tensor_map out;
  for (const auto& e : z.entries()) {
    FACENET_CHECK(e.name.size() > 4 && e.name.compare(e.name.size() - 4, 4, ".npy") == 0, format_error,
                  what + ": member '" + e.name + "' is not a .npy file");
    const std::vector<std::uint8_t> data = z.read(e);
    named_tensor nt = parse_npy_array({data.data(), data.size()}, what + ":" + e.name, e.name.substr(0, e.name.size() - 4));
    out.add(std::move(nt.name), std::move(nt.value), std::move(nt.source_dtype));
  }
  return out;
}

inline tensor_map load_npz(const std::string& path) {
  const mapped_file file(path);
  return parse_npz(file.bytes(), path);
}

}  // namespace facenet::io
