// A restricted unpickler for the pickles weight files contain (torch.save state_dicts, numpy object
// arrays). It never imports or calls anything: it builds a value tree in which calls of the few
// allowed globals become `object` nodes for the format readers to interpret, and any other global
// (os.system, builtins.eval, ...) is a format_error naming it. Opcodes cover protocols 2-5 as
// used by those writers; text-mode (protocol 0/1) opcodes are rejected. The tree is an arena of
// nodes addressed by index, so hostile nesting or cycles cannot overflow the stack when it is
// walked or destroyed, and every count is bounded by the bytes of the pickle.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/io/binary.hpp"

namespace facenet::io {

enum class pickle_kind { none, boolean, integer, big_integer, real, string, bytes, tuple, list, dict, global, object, persistent_id };

inline const char* pickle_kind_name(pickle_kind k) noexcept {
  switch (k) {
    case pickle_kind::none: return "None";
    case pickle_kind::boolean: return "bool";
    case pickle_kind::integer: return "int";
    case pickle_kind::big_integer: return "big int";
    case pickle_kind::real: return "float";
    case pickle_kind::string: return "str";
    case pickle_kind::bytes: return "bytes";
    case pickle_kind::tuple: return "tuple";
    case pickle_kind::list: return "list";
    case pickle_kind::dict: return "dict";
    case pickle_kind::global: return "global";
    case pickle_kind::object: return "object";
    case pickle_kind::persistent_id: return "persistent id";
  }
  return "?";
}

struct pickle_node {
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  pickle_kind kind = pickle_kind::none;
  std::int64_t integer = 0;  // int, bool
  double real = 0;
  // str (UTF-8, or raw bytes when latin1_raw), bytes, big int (little-endian two's complement),
  // global and object ("module.name" of the callable).
  std::string text;
  bool latin1_raw = false;  // a Python 2 str: raw bytes that Python 3 decodes as latin1
  // tuple/list elements; dict keys and values interleaved; persistent id: {pid}; object: {args}.
  std::vector<std::size_t> items;
  std::size_t state = npos;  // object state set by BUILD
  std::uint64_t offset = 0;  // where in the pickle the node was made, for messages
};

// Which globals a pickle may name. Everything else is refused when the opcode is read.
inline const std::set<std::string>& default_pickle_globals() {
  static const std::set<std::string> allowed = {
      "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
      "torch.FloatStorage", "torch.DoubleStorage", "torch.HalfStorage", "torch.BFloat16Storage", "torch.LongStorage",
      "torch.IntStorage", "torch.ShortStorage", "torch.CharStorage", "torch.ByteStorage", "torch.BoolStorage",
      "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype",
      "_codecs.encode"};
  return allowed;
}

class pickle_tree {
 public:
  const pickle_node& node(std::size_t i) const {
    FACENET_CHECK(i < nodes_.size(), format_error, what_ + ": pickle node index out of range");
    return nodes_[i];
  }
  std::size_t root() const noexcept { return root_; }
  std::size_t size() const noexcept { return nodes_.size(); }
  const std::string& what() const noexcept { return what_; }

  const pickle_node& expect(std::size_t i, pickle_kind k, const std::string& context) const {
    const pickle_node& n = node(i);
    FACENET_CHECK(n.kind == k, format_error,
                  what_ + ": " + context + ": expected a pickled " + pickle_kind_name(k) + ", found " + pickle_kind_name(n.kind) +
                      " (pickle offset " + std::to_string(n.offset) + ")");
    return n;
  }
  std::int64_t as_int(std::size_t i, const std::string& context) const {
    const pickle_node& n = node(i);
    if (n.kind == pickle_kind::boolean) return n.integer;
    return expect(i, pickle_kind::integer, context).integer;
  }
  bool as_bool(std::size_t i, const std::string& context) const {
    const pickle_node& n = node(i);
    if (n.kind == pickle_kind::integer) return n.integer != 0;
    return expect(i, pickle_kind::boolean, context).integer != 0;
  }
  // A str as UTF-8 (a Python 2 str is decoded as latin1, as numpy.load(encoding='latin1') does).
  std::string as_str(std::size_t i, const std::string& context) const {
    const pickle_node& n = expect(i, pickle_kind::string, context);
    if (!n.latin1_raw) return n.text;
    std::string out;
    for (unsigned char c : n.text) {
      if (c < 0x80) {
        out += static_cast<char>(c);
      } else {
        out += static_cast<char>(0xc0 | (c >> 6));
        out += static_cast<char>(0x80 | (c & 0x3f));
      }
    }
    return out;
  }
  // bytes, or a str encoded as latin1 (how numpy pickles raw array data under protocol 2).
  std::string as_bytes(std::size_t i, const std::string& context) const {
    const pickle_node& n = node(i);
    if (n.kind == pickle_kind::bytes || (n.kind == pickle_kind::string && n.latin1_raw)) return n.text;
    if (n.kind == pickle_kind::string) return latin1_encode(n.text, context);
    return expect(i, pickle_kind::bytes, context).text;
  }
  // Elements of a tuple or list.
  const std::vector<std::size_t>& sequence(std::size_t i, const std::string& context) const {
    const pickle_node& n = node(i);
    if (n.kind == pickle_kind::list) return n.items;
    return expect(i, pickle_kind::tuple, context).items;
  }
  const std::vector<std::size_t>& sequence(std::size_t i, std::size_t length, const std::string& context) const {
    const auto& s = sequence(i, context);
    FACENET_CHECK(s.size() == length, format_error,
                  what_ + ": " + context + ": expected " + std::to_string(length) + " elements, found " + std::to_string(s.size()));
    return s;
  }
  std::string latin1_encode(const std::string& utf8, const std::string& context) const {
    std::string out;
    for (std::size_t k = 0; k < utf8.size(); ++k) {
      const auto c = static_cast<unsigned char>(utf8[k]);
      if (c < 0x80) {
        out += static_cast<char>(c);
      } else if ((c & 0xe0) == 0xc0 && c <= 0xc3 && k + 1 < utf8.size()) {
        out += static_cast<char>(((c & 0x1f) << 6) | (static_cast<unsigned char>(utf8[++k]) & 0x3f));
      } else {
        throw format_error(what_ + ": " + context + ": string is not encodable as latin1");
      }
    }
    return out;
  }

 private:
  friend class unpickler;
  std::vector<pickle_node> nodes_;
  std::size_t root_ = pickle_node::npos;
  std::string what_;
};

// Limits of one walk over the tensors of a pickle. Memo references make a pickle a graph: a few bytes
// can list one dict or one tensor many times, and nesting such lists makes the number of paths grow
// exponentially. So each node visited is charged against the node count (which a real file, a tree
// apart from shared tensors, never exceeds), and each decoded tensor against a multiple of the file
// size (float32 output widens 1- and 2-byte types and tied weights decode one storage twice, but a
// hostile file could otherwise decode one storage many thousand times).
class pickle_walk_budget {
 public:
  static constexpr std::uint64_t output_factor = 8;

  pickle_walk_budget(const pickle_tree& t, std::uint64_t file_size)
      : tree_(t), visits_left_(t.size()), output_left_(output_factor * file_size + (std::uint64_t{64} << 20)) {}
  void charge_visit() {
    FACENET_CHECK(visits_left_ > 0, format_error,
                  tree_.what() + ": the pickle's references reach more values than it holds (" + std::to_string(tree_.size()) +
                      "); shared or cyclic containers are not a state_dict");
    --visits_left_;
  }
  // Before decoding `numel` elements into a float tensor.
  void charge_output(std::uint64_t numel, const std::string& what) {
    FACENET_CHECK(numel <= output_left_ / sizeof(float), format_error,
                  what + ": decoding " + std::to_string(numel) + " more elements would exceed " +
                      std::to_string(output_factor) + "x the file size + 64 MiB (a storage referenced over and over?)");
    output_left_ -= numel * sizeof(float);
  }

 private:
  const pickle_tree& tree_;
  std::size_t visits_left_;
  std::uint64_t output_left_;
};

// Reads one pickle starting at the reader's position and leaves the reader just past its STOP.
class unpickler {
 public:
  // Generous for weight files (an InceptionResnetV1 state_dict makes ~15k nodes; pickle batches
  // APPENDS/SETITEMS by 1000, so the stack stays shallow) while capping what a hostile pickle can
  // make us allocate (a node is ~100 bytes).
  static constexpr std::size_t max_stack = 1u << 16;
  static constexpr std::size_t max_memo = 1u << 20;
  static constexpr std::size_t max_nodes = 1u << 21;

  unpickler(span_reader& r, const std::set<std::string>& allowed_globals = default_pickle_globals())
      : r_(r), allowed_(allowed_globals) {
    tree_.what_ = r.what();
  }

  pickle_tree load() {
    for (;;) {
      op_offset_ = r_.position();
      const std::uint8_t op = r_.byte("pickle opcode");
      if (op == '.') break;
      dispatch(op);
    }
    FACENET_CHECK(stack_.size() == 1 && marks_.empty(), format_error,
                  where() + "STOP with " + std::to_string(stack_.size()) + " values on the stack");
    tree_.root_ = stack_.back();
    return std::move(tree_);
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const { throw format_error(where() + msg); }
  std::string where() const { return r_.what() + ": pickle offset " + std::to_string(op_offset_) + ": "; }

  std::size_t make(pickle_kind k) {
    // Each opcode makes at most one node, so the arena is also bounded by the pickle's size.
    if (tree_.nodes_.size() >= max_nodes) fail("more than " + std::to_string(max_nodes) + " values");
    pickle_node n;
    n.kind = k;
    n.offset = op_offset_;
    tree_.nodes_.push_back(std::move(n));
    return tree_.nodes_.size() - 1;
  }
  pickle_node& at(std::size_t i) { return tree_.nodes_[i]; }
  void push(std::size_t i) {
    if (stack_.size() >= max_stack) fail("stack deeper than " + std::to_string(max_stack));
    stack_.push_back(i);
  }
  std::size_t pop() {
    if (stack_.size() <= stack_floor()) fail("stack underflow");
    const std::size_t v = stack_.back();
    stack_.pop_back();
    return v;
  }
  std::size_t top() {
    if (stack_.size() <= stack_floor()) fail("stack underflow");
    return stack_.back();
  }
  std::size_t stack_floor() const { return marks_.empty() ? 0 : marks_.back(); }
  // Values pushed since the last MARK, which is removed.
  std::vector<std::size_t> pop_mark() {
    if (marks_.empty()) fail("no MARK on the stack");
    const std::size_t m = marks_.back();
    marks_.pop_back();
    std::vector<std::size_t> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  void push_int(std::int64_t v) {
    const std::size_t n = make(pickle_kind::integer);
    at(n).integer = v;
    push(n);
  }
  void push_text(pickle_kind k, std::string s, bool latin1_raw = false) {
    const std::size_t n = make(k);
    at(n).text = std::move(s);
    at(n).latin1_raw = latin1_raw;
    push(n);
  }
  void push_long(std::uint64_t len) {
    const std::uint8_t* p = r_.take(len, "long integer");
    if (len <= 8) {
      std::uint64_t v = 0;
      for (std::uint64_t i = 0; i < len; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
      if (len > 0 && len < 8 && (p[len - 1] & 0x80)) v |= ~0ull << (8 * len);  // sign-extend
      push_int(static_cast<std::int64_t>(v));
    } else {
      push_text(pickle_kind::big_integer, std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(len)));
    }
  }
  void push_tuple(std::vector<std::size_t> items) {
    const std::size_t n = make(pickle_kind::tuple);
    at(n).items = std::move(items);
    push(n);
  }
  void push_global(const std::string& module, const std::string& name) {
    const std::string full = module + "." + name;
    if (!allowed_.count(full)) fail("global '" + full + "' is not allowed (this reader never imports or calls arbitrary code)");
    push_text(pickle_kind::global, full);
  }
  void memo_put(std::uint64_t key) {
    if (memo_.size() >= max_memo && !memo_.count(key)) fail("memo larger than " + std::to_string(max_memo));
    memo_[key] = top();
  }
  void memo_get(std::uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) fail("memo key " + std::to_string(key) + " not defined");
    push(it->second);
  }
  std::string read_line(const char* field) {
    std::string s;
    for (;;) {
      const char c = static_cast<char>(r_.byte(field));
      if (c == '\n') return s;
      if (s.size() > 256) fail(std::string(field) + " longer than 256 characters");
      s += c;
    }
  }
  void set_items(std::size_t dict, const std::vector<std::size_t>& kv) {
    if (at(dict).kind != pickle_kind::dict) fail(std::string("SETITEM(S) on a ") + pickle_kind_name(at(dict).kind));
    if (kv.size() % 2) fail("SETITEMS with an odd number of values");
    auto& items = at(dict).items;
    items.insert(items.end(), kv.begin(), kv.end());
  }
  void append_items(std::size_t list, const std::vector<std::size_t>& values) {
    if (at(list).kind != pickle_kind::list) fail(std::string("APPEND(S) on a ") + pickle_kind_name(at(list).kind));
    auto& items = at(list).items;
    items.insert(items.end(), values.begin(), values.end());
  }
  // Calls are recorded, not made, except for the two whose meaning is pure data.
  void reduce(std::size_t callable, std::size_t args) {
    if (at(callable).kind != pickle_kind::global) fail(std::string("REDUCE on a ") + pickle_kind_name(at(callable).kind));
    if (at(args).kind != pickle_kind::tuple) fail("REDUCE arguments are not a tuple");
    const std::string name = at(callable).text;
    if (name == "collections.OrderedDict") {
      if (!at(args).items.empty()) fail("OrderedDict called with arguments");
      push(make(pickle_kind::dict));
      return;
    }
    if (name == "_codecs.encode") {
      const auto items = at(args).items;
      if (items.size() != 2) fail("_codecs.encode expects 2 arguments");
      const std::string enc = tree_.as_str(items[1], "_codecs.encode encoding");
      if (enc != "latin1" && enc != "latin-1") fail("_codecs.encode with encoding '" + enc + "' (only latin1 is supported)");
      std::string b = tree_.as_bytes(items[0], "_codecs.encode argument");
      push_text(pickle_kind::bytes, std::move(b));
      return;
    }
    const std::size_t n = make(pickle_kind::object);
    at(n).text = name;
    at(n).items = {args};
    push(n);
  }
  void build(std::size_t obj, std::size_t state) {
    pickle_node& o = at(obj);
    if (o.kind == pickle_kind::object) {
      if (o.state != pickle_node::npos) fail("BUILD applied twice to " + o.text);
      o.state = state;
    } else if (o.kind != pickle_kind::dict) {  // an OrderedDict's attributes (torch's _metadata) are dropped
      fail(std::string("BUILD on a ") + pickle_kind_name(o.kind));
    }
  }

  void dispatch(std::uint8_t op) {
    switch (op) {
      case 0x80: {  // PROTO
        const std::uint8_t v = r_.byte("protocol");
        if (v < 2 || v > 5) fail("unsupported pickle protocol " + std::to_string(v));
        return;
      }
      case 0x95: r_.take(8, "frame length"); return;  // FRAME: framing is only a read-ahead hint
      case '(': marks_.push_back(stack_.size()); return;
      case '0': pop(); return;
      case '1': pop_mark(); return;
      case '2': push(top()); return;
      case 'N': push(make(pickle_kind::none)); return;
      case 0x88: case 0x89: {
        const std::size_t n = make(pickle_kind::boolean);
        at(n).integer = op == 0x88;
        push(n);
        return;
      }
      case 'J': push_int(r_.read<std::int32_t>("BININT")); return;
      case 'K': push_int(r_.byte("BININT1")); return;
      case 'M': push_int(r_.read<std::uint16_t>("BININT2")); return;
      case 0x8a: push_long(r_.byte("LONG1 length")); return;
      case 0x8b: {
        const std::int32_t len = r_.read<std::int32_t>("LONG4 length");
        if (len < 0) fail("negative LONG4 length");
        push_long(static_cast<std::uint64_t>(len));
        return;
      }
      case 'G': {  // BINFLOAT is big-endian
        const std::uint8_t* p = r_.take(8, "BINFLOAT");
        std::uint64_t b = 0;
        for (int i = 0; i < 8; ++i) b = (b << 8) | p[i];
        const std::size_t n = make(pickle_kind::real);
        std::memcpy(&at(n).real, &b, 8);
        push(n);
        return;
      }
      case 'T': push_text(pickle_kind::string, r_.string(r_.read<std::uint32_t>("BINSTRING length"), "BINSTRING"), true); return;
      case 'U': push_text(pickle_kind::string, r_.string(r_.byte("SHORT_BINSTRING length"), "SHORT_BINSTRING"), true); return;
      case 'X': push_text(pickle_kind::string, r_.string(r_.read<std::uint32_t>("BINUNICODE length"), "BINUNICODE")); return;
      case 0x8c: push_text(pickle_kind::string, r_.string(r_.byte("SHORT_BINUNICODE length"), "SHORT_BINUNICODE")); return;
      case 0x8d: push_text(pickle_kind::string, r_.string(r_.read<std::uint64_t>("BINUNICODE8 length"), "BINUNICODE8")); return;
      case 'B': push_text(pickle_kind::bytes, r_.string(r_.read<std::uint32_t>("BINBYTES length"), "BINBYTES")); return;
      case 'C': push_text(pickle_kind::bytes, r_.string(r_.byte("SHORT_BINBYTES length"), "SHORT_BINBYTES")); return;
      case 0x8e: push_text(pickle_kind::bytes, r_.string(r_.read<std::uint64_t>("BINBYTES8 length"), "BINBYTES8")); return;
      case ')': push_tuple({}); return;
      case 't': push_tuple(pop_mark()); return;
      case 0x85: case 0x86: case 0x87: {
        std::vector<std::size_t> items(static_cast<std::size_t>(op - 0x84));
        for (std::size_t i = items.size(); i-- > 0;) items[i] = pop();
        push_tuple(std::move(items));
        return;
      }
      case ']': push(make(pickle_kind::list)); return;
      case 'l': {
        auto items = pop_mark();
        const std::size_t n = make(pickle_kind::list);
        at(n).items = std::move(items);
        push(n);
        return;
      }
      case 'a': {
        const std::size_t v = pop();
        append_items(top(), {v});
        return;
      }
      case 'e': {
        auto values = pop_mark();
        append_items(top(), values);
        return;
      }
      case '}': push(make(pickle_kind::dict)); return;
      case 'd': {
        auto kv = pop_mark();
        const std::size_t n = make(pickle_kind::dict);
        push(n);
        set_items(n, kv);
        return;
      }
      case 's': {
        const std::size_t v = pop();
        const std::size_t k = pop();
        set_items(top(), {k, v});
        return;
      }
      case 'u': {
        auto kv = pop_mark();
        set_items(top(), kv);
        return;
      }
      case 'c': {
        const std::string module = read_line("GLOBAL module");
        const std::string name = read_line("GLOBAL name");
        push_global(module, name);
        return;
      }
      case 0x93: {
        const std::size_t name = pop();
        const std::size_t module = pop();
        push_global(tree_.as_str(module, "STACK_GLOBAL module"), tree_.as_str(name, "STACK_GLOBAL name"));
        return;
      }
      case 'R': {
        const std::size_t args = pop();
        reduce(pop(), args);
        return;
      }
      case 0x81: {  // NEWOBJ cls.__new__(cls, *args): recorded like a call
        const std::size_t args = pop();
        reduce(pop(), args);
        return;
      }
      case 'b': {
        const std::size_t state = pop();
        build(top(), state);
        return;
      }
      case 'Q': {
        const std::size_t pid = pop();
        const std::size_t n = make(pickle_kind::persistent_id);
        at(n).items = {pid};
        push(n);
        return;
      }
      case 'q': memo_put(r_.byte("BINPUT index")); return;
      case 'r': memo_put(r_.read<std::uint32_t>("LONG_BINPUT index")); return;
      case 0x94: memo_put(memo_.size()); return;  // MEMOIZE
      case 'h': memo_get(r_.byte("BINGET index")); return;
      case 'j': memo_get(r_.read<std::uint32_t>("LONG_BINGET index")); return;
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        fail(std::string("opcode ") + hex + ((op >= 0x20 && op < 0x7f) ? std::string(" ('") + static_cast<char>(op) + "')" : "") +
             " is not allowed in a weights pickle");
      }
    }
  }

  span_reader& r_;
  const std::set<std::string>& allowed_;
  pickle_tree tree_;
  std::vector<std::size_t> stack_;
  std::vector<std::size_t> marks_;
  std::map<std::uint64_t, std::size_t> memo_;
  std::uint64_t op_offset_ = 0;
};

// Unpickles the whole of `bytes` (trailing bytes after STOP are an error).
inline pickle_tree unpickle(byte_span bytes, const std::string& what,
                            const std::set<std::string>& allowed_globals = default_pickle_globals()) {
  span_reader r(bytes, what);
  pickle_tree t = unpickler(r, allowed_globals).load();
  FACENET_CHECK(r.at_end(), format_error, what + ": " + std::to_string(r.remaining()) + " bytes after the pickle's STOP");
  return t;
}

}  // namespace facenet::io
