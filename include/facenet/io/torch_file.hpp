// torch.save files holding state_dicts, without PyTorch:
//  * zip format (torch >= 1.6): <prefix>/data.pkl plus one stored entry <prefix>/data/<key> per storage;
//    the pickle names storages by persistent id ('storage', torch.FloatStorage, key, location, numel).
//  * legacy format: consecutive pickles - magic 0x1950a86a20f9469cfc6c, protocol 1001, sys info, the
//    object (persistent ids ('storage', type, key, location, numel, view)), the list of storage keys -
//    then each storage as an 8-byte element count and its raw bytes.
// Tensors are torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...) calls; offset and
// strides are honoured (published MTCNN weights are strided views). Floating tensors become float;
// integer tensors (e.g. BatchNorm's num_batches_tracked) too, when every value is exact in float.
// Nested dicts are flattened with '.'; non-tensor leaves (epoch numbers, strings) are skipped.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/io/binary.hpp"
#include "facenet/io/mmap_file.hpp"
#include "facenet/io/pickle.hpp"
#include "facenet/io/tensor_map.hpp"
#include "facenet/io/zip.hpp"

namespace facenet::io {

namespace detail {

inline element_type torch_storage_type(const std::string& global, const std::string& what) {
  static const std::pair<const char*, element_type> table[] = {
      {"torch.FloatStorage", element_type::f32},  {"torch.DoubleStorage", element_type::f64},
      {"torch.HalfStorage", element_type::f16},   {"torch.BFloat16Storage", element_type::bf16},
      {"torch.LongStorage", element_type::i64},   {"torch.IntStorage", element_type::i32},
      {"torch.ShortStorage", element_type::i16},  {"torch.CharStorage", element_type::i8},
      {"torch.ByteStorage", element_type::u8},    {"torch.BoolStorage", element_type::boolean}};
  for (const auto& e : table)
    if (global == e.first) return e.second;
  throw unsupported_error(what + ": unsupported storage type " + global);
}

struct torch_storage {
  byte_span bytes;
  element_type type;
};

// Resolves a persistent id to its storage; supplied by the zip or legacy container.
using storage_resolver = std::function<torch_storage(const pickle_tree&, std::size_t pid_tuple)>;

inline bool is_tensor_call(const pickle_tree& t, std::size_t i) {
  const pickle_node& n = t.node(i);
  return n.kind == pickle_kind::object &&
         (n.text == "torch._utils._rebuild_tensor_v2" || n.text == "torch._utils._rebuild_parameter");
}

inline named_tensor rebuild_tensor(const pickle_tree& t, std::size_t i, const std::string& name, const storage_resolver& resolve,
                                   pickle_walk_budget& budget) {
  const std::string what = t.what() + ": tensor '" + name + "'";
  const pickle_node& call = t.node(i);
  const auto& args = t.sequence(call.items[0], what + " arguments");
  if (call.text == "torch._utils._rebuild_parameter") {
    FACENET_CHECK(!args.empty() && is_tensor_call(t, args[0]) && t.node(args[0]).text != call.text, format_error,
                  what + ": _rebuild_parameter without a tensor");
    return rebuild_tensor(t, args[0], name, resolve, budget);
  }
  FACENET_CHECK(args.size() >= 4, format_error, what + ": _rebuild_tensor_v2 with " + std::to_string(args.size()) + " arguments");
  const pickle_node& pid = t.expect(args[0], pickle_kind::persistent_id, what + " storage");
  const torch_storage st = resolve(t, pid.items[0]);
  const std::int64_t offset = t.as_int(args[1], what + " storage offset");
  const auto& size = t.sequence(args[2], what + " size");
  const auto& stride = t.sequence(args[3], what + " stride");
  FACENET_CHECK(size.size() == stride.size(), format_error, what + ": size and stride differ in length");
  FACENET_CHECK(static_cast<int>(size.size()) <= shape::max_rank, unsupported_error, what + ": rank " + std::to_string(size.size()));
  shape dims;
  std::vector<std::int64_t> strides;
  for (std::size_t k = 0; k < size.size(); ++k) {
    const std::int64_t d = t.as_int(size[k], what + " size");
    FACENET_CHECK(d >= 0, format_error, what + ": negative size " + std::to_string(d));
    dims.push_back(d);
    strides.push_back(t.as_int(stride[k], what + " stride"));
  }
  budget.charge_output(shape_numel(dims, what), what);
  return {name, decode_tensor(st.bytes, st.type, dims, offset, strides, what), element_type_name(st.type)};
}

inline void collect_tensors(const pickle_tree& t, std::size_t i, const std::string& prefix, const storage_resolver& resolve,
                            tensor_map& out, int depth, pickle_walk_budget& budget) {
  FACENET_CHECK(depth < 8, format_error, t.what() + ": dictionaries nested deeper than 8");
  budget.charge_visit();
  const pickle_node& n = t.node(i);
  if (is_tensor_call(t, i)) {
    named_tensor nt = rebuild_tensor(t, i, prefix, resolve, budget);
    out.add(std::move(nt.name), std::move(nt.value), std::move(nt.source_dtype));
    return;
  }
  if (n.kind != pickle_kind::dict) {
    FACENET_CHECK(n.kind != pickle_kind::object && n.kind != pickle_kind::persistent_id, format_error,
                  t.what() + ": '" + prefix + "' is a " + n.text + " object, not a tensor or a dict");
    return;  // plain data (numbers, strings, lists) carries no weights
  }
  for (std::size_t k = 0; k + 1 < n.items.size(); k += 2) {
    const std::string key = t.as_str(n.items[k], "state_dict key");
    collect_tensors(t, n.items[k + 1], prefix.empty() ? key : prefix + "." + key, resolve, out, depth + 1, budget);
  }
}

inline tensor_map state_dict_from(const pickle_tree& t, const storage_resolver& resolve, std::uint64_t file_size) {
  tensor_map out;
  FACENET_CHECK(t.node(t.root()).kind == pickle_kind::dict || is_tensor_call(t, t.root()), format_error,
                t.what() + ": top-level object is a " + pickle_kind_name(t.node(t.root()).kind) + ", expected a state_dict");
  pickle_walk_budget budget(t, file_size);
  collect_tensors(t, t.root(), "", resolve, out, 0, budget);
  return out;
}

struct storage_ref {
  std::string key;
  element_type type;
  std::int64_t numel;
};
inline storage_ref read_storage_pid(const pickle_tree& t, std::size_t pid, std::size_t min_len) {
  const auto& p = t.sequence(pid, t.what() + ": persistent id");
  FACENET_CHECK(p.size() >= min_len && t.as_str(p[0], "persistent id tag") == "storage", format_error,
                t.what() + ": unexpected persistent id (expected ('storage', type, key, location, size, ...))");
  const pickle_node& type = t.expect(p[1], pickle_kind::global, "storage type");
  return {t.as_str(p[2], "storage key"), torch_storage_type(type.text, t.what()), t.as_int(p[4], "storage size")};
}

inline const std::uint8_t legacy_magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

}  // namespace detail

// True when `bytes` starts like a legacy torch.save stream (a protocol-2 pickle of the magic number).
inline bool is_torch_legacy(byte_span b) {
  static const std::uint8_t prefix[] = {0x80, 0x02, 0x8a, 0x0a};
  return b.size >= 14 && std::memcmp(b.data, prefix, 4) == 0 && std::memcmp(b.data + 4, detail::legacy_magic, 10) == 0;
}

inline tensor_map parse_torch_zip(byte_span bytes, const std::string& what) {
  const zip_archive z(bytes, what);
  const zip_entry* pkl = nullptr;
  for (const auto& e : z.entries()) {
    const auto slash = e.name.find('/');
    if (slash != std::string::npos && e.name.compare(slash, std::string::npos, "/data.pkl") == 0) {
      FACENET_CHECK(!pkl, format_error, what + ": more than one data.pkl");
      pkl = &e;
    }
  }
  FACENET_CHECK(pkl, format_error, what + ": zip archive without <name>/data.pkl (not a torch.save file)");
  const std::string prefix = pkl->name.substr(0, pkl->name.size() - 8);
  if (const zip_entry* order = z.find(prefix + "byteorder")) {
    const byte_span b = z.stored_data(*order);
    FACENET_CHECK(b.str() == "little", unsupported_error, what + ": byte order '" + b.str() + "' (only little-endian is supported)");
  }
  const std::vector<std::uint8_t> pickle_bytes = z.read(*pkl);
  const pickle_tree t = unpickle({pickle_bytes.data(), pickle_bytes.size()}, what + ":" + pkl->name);
  const detail::storage_resolver resolve = [&](const pickle_tree& tree, std::size_t pid) {
    const detail::storage_ref ref = detail::read_storage_pid(tree, pid, 5);
    const std::string entry = prefix + "data/" + ref.key;
    const zip_entry* e = z.find(entry);
    FACENET_CHECK(e, format_error, what + ": storage '" + entry + "' is missing");
    const byte_span data = z.stored_data(*e);
    FACENET_CHECK(ref.numel >= 0 && data.size == checked_mul(static_cast<std::uint64_t>(ref.numel), element_size(ref.type), what),
                  format_error, what + ": storage '" + entry + "' holds " + std::to_string(data.size) + " bytes, expected " +
                                    std::to_string(ref.numel) + " elements of " + element_type_name(ref.type));
    return detail::torch_storage{data, ref.type};
  };
  return detail::state_dict_from(t, resolve, bytes.size);
}

inline tensor_map parse_torch_legacy(byte_span bytes, const std::string& what) {
  FACENET_CHECK(is_torch_legacy(bytes), format_error, what + ": not a torch.save file (bad magic number)");
  span_reader r(bytes, what);
  unpickler(r).load();  // magic, already checked
  const pickle_tree protocol = unpickler(r).load();
  FACENET_CHECK(protocol.as_int(protocol.root(), "protocol version") == 1001, unsupported_error,
                what + ": legacy protocol " + std::to_string(protocol.as_int(protocol.root(), "protocol version")) + ", expected 1001");
  const pickle_tree sys_info = unpickler(r).load();
  const pickle_node& info = sys_info.expect(sys_info.root(), pickle_kind::dict, "sys_info");
  for (std::size_t k = 0; k + 1 < info.items.size(); k += 2)
    if (sys_info.node(info.items[k]).kind == pickle_kind::string && sys_info.as_str(info.items[k], "key") == "little_endian")
      FACENET_CHECK(sys_info.as_bool(info.items[k + 1], "little_endian"), unsupported_error, what + ": saved on a big-endian machine");
  const pickle_tree t = unpickler(r).load();
  const pickle_tree keys = unpickler(r).load();

  // Storages follow in the order of the key list, each as an element count then raw bytes. Their
  // element types come from the persistent ids, so collect those first.
  std::map<std::string, element_type> types;
  for (std::size_t i = 0; i < t.size(); ++i)
    if (t.node(i).kind == pickle_kind::persistent_id) {
      const detail::storage_ref ref = detail::read_storage_pid(t, t.node(i).items[0], 6);
      auto it = types.emplace(ref.key, ref.type).first;
      FACENET_CHECK(it->second == ref.type, format_error, what + ": storage '" + ref.key + "' used with two element types");
    }
  std::map<std::string, detail::torch_storage> storages;
  for (std::size_t k : keys.sequence(keys.root(), "storage key list")) {
    const std::string key = keys.as_str(k, "storage key");
    auto type = types.find(key);
    FACENET_CHECK(type != types.end(), format_error, what + ": storage '" + key + "' is not referenced by the pickle");
    const std::uint64_t numel = r.read<std::uint64_t>("storage element count");
    const std::uint64_t nbytes = checked_mul(numel, element_size(type->second), what);
    FACENET_CHECK(storages.emplace(key, detail::torch_storage{r.span(nbytes, "storage data"), type->second}).second, format_error,
                  what + ": storage '" + key + "' listed twice");
  }
  const detail::storage_resolver resolve = [&](const pickle_tree& tree, std::size_t pid) {
    const detail::storage_ref ref = detail::read_storage_pid(tree, pid, 6);
    auto it = storages.find(ref.key);
    FACENET_CHECK(it != storages.end(), format_error, what + ": storage '" + ref.key + "' is not in the file");
    detail::torch_storage st = it->second;
    const auto& p = tree.sequence(pid, "persistent id");
    if (tree.node(p[5]).kind != pickle_kind::none) {  // (view_key, offset, size): a view of the root storage
      const auto& view = tree.sequence(p[5], 3, "storage view");
      const std::int64_t off = tree.as_int(view[1], "view offset"), n = tree.as_int(view[2], "view size");
      FACENET_CHECK(off >= 0 && n >= 0, format_error, what + ": negative storage view");
      st.bytes = st.bytes.sub(checked_mul(static_cast<std::uint64_t>(off), element_size(st.type), what),
                              checked_mul(static_cast<std::uint64_t>(n), element_size(st.type), what), what + ": storage view");
    }
    return st;
  };
  return detail::state_dict_from(t, resolve, bytes.size);
}

inline bool is_zip(byte_span b) { return b.size >= 4 && std::memcmp(b.data, "PK\x03\x04", 4) == 0; }

// Loads a torch.save file of either format.
inline tensor_map load_torch(const std::string& path) {
  const mapped_file file(path);
  if (is_zip(file.bytes())) return parse_torch_zip(file.bytes(), path);
  return parse_torch_legacy(file.bytes(), path);
}

}  // namespace facenet::io
