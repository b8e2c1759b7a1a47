// The restricted unpickler: pickles written by CPython's pickle module (protocols 2, 4, 5) decode to
// the right tree; anything outside the allowed globals / opcodes, or structurally broken, is a
// clean format_error; hostile sizes and nesting neither crash nor allocate beyond the input.
#include <string>

#include "facenet/io/pickle.hpp"
#include "fixtures/io_fixtures.hpp"

using namespace facenet;
using namespace facenet::io;

namespace {

#define BYTES(lit) std::string(lit, sizeof(lit) - 1)

pickle_tree load(const std::string& s) { return unpickle({reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}, "test.pkl"); }

// pickle.dumps({'a': [1, -2, 300, 70000, -(2**40), 3.5, True, False, None, 'x\u00e9', b'y\x00'],
//               'big': 2**70, 'neg': -129, 't': (1, 2, 3, 4)}, protocol=P) from CPython 3.11.
const std::string python_p2 = BYTES(
    "\x80\x02\x7d\x71\x00\x28\x58\x01\x00\x00\x00\x61\x71\x01\x5d\x71\x02\x28\x4b\x01\x4a\xfe\xff\xff\xff\x4d\x2c\x01\x4a\x70\x11"
    "\x01\x00\x8a\x06\x00\x00\x00\x00\x00\xff\x47\x40\x0c\x00\x00\x00\x00\x00\x00\x88\x89\x4e\x58\x03\x00\x00\x00\x78\xc3\xa9\x71"
    "\x03\x63\x5f\x63\x6f\x64\x65\x63\x73\x0a\x65\x6e\x63\x6f\x64\x65\x0a\x71\x04\x58\x02\x00\x00\x00\x79\x00\x71\x05\x58\x06\x00"
    "\x00\x00\x6c\x61\x74\x69\x6e\x31\x71\x06\x86\x71\x07\x52\x71\x08\x65\x58\x03\x00\x00\x00\x62\x69\x67\x71\x09\x8a\x09\x00\x00"
    "\x00\x00\x00\x00\x00\x00\x40\x58\x03\x00\x00\x00\x6e\x65\x67\x71\x0a\x4a\x7f\xff\xff\xff\x58\x01\x00\x00\x00\x74\x71\x0b\x28"
    "\x4b\x01\x4b\x02\x4b\x03\x4b\x04\x74\x71\x0c\x75\x2e");
const std::string python_p4 = BYTES(
    "\x80\x04\x95\x66\x00\x00\x00\x00\x00\x00\x00\x7d\x94\x28\x8c\x01\x61\x94\x5d\x94\x28\x4b\x01\x4a\xfe\xff\xff\xff\x4d\x2c\x01"
    "\x4a\x70\x11\x01\x00\x8a\x06\x00\x00\x00\x00\x00\xff\x47\x40\x0c\x00\x00\x00\x00\x00\x00\x88\x89\x4e\x8c\x03\x78\xc3\xa9\x94"
    "\x43\x02\x79\x00\x94\x65\x8c\x03\x62\x69\x67\x94\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x40\x8c\x03\x6e\x65\x67\x94\x4a\x7f"
    "\xff\xff\xff\x8c\x01\x74\x94\x28\x4b\x01\x4b\x02\x4b\x03\x4b\x04\x74\x94\x75\x2e");

std::size_t dict_get(const pickle_tree& t, std::size_t dict, const std::string& key) {
  const auto& items = t.expect(dict, pickle_kind::dict, "dict").items;
  for (std::size_t k = 0; k + 1 < items.size(); k += 2)
    if (t.as_str(items[k], "key") == key) return items[k + 1];
  ADD_FAILURE() << "no key " << key;
  return 0;
}

}  // namespace

TEST(pickle, decodes_cpython_protocols_2_4_5) {
  std::string p5_bytes = python_p4;
  p5_bytes[1] = '\x05';  // protocol 5 writes the same opcodes for this object
  const std::string& p5 = p5_bytes;
  for (const std::string* bytes : {&python_p2, &python_p4, &p5}) {
    const pickle_tree t = load(*bytes);
    const auto& a = t.sequence(dict_get(t, t.root(), "a"), 11, "a");
    EXPECT_EQ(t.as_int(a[0], ""), 1);
    EXPECT_EQ(t.as_int(a[1], ""), -2);
    EXPECT_EQ(t.as_int(a[2], ""), 300);
    EXPECT_EQ(t.as_int(a[3], ""), 70000);
    EXPECT_EQ(t.as_int(a[4], ""), -(std::int64_t(1) << 40));
    EXPECT_EQ(t.node(a[5]).real, 3.5);
    EXPECT_TRUE(t.as_bool(a[6], ""));
    EXPECT_FALSE(t.as_bool(a[7], ""));
    EXPECT_EQ(t.node(a[8]).kind, pickle_kind::none);
    EXPECT_EQ(t.as_str(a[9], ""), "x\xc3\xa9");
    EXPECT_EQ(t.node(a[10]).kind, pickle_kind::bytes);  // protocol 2 spells it _codecs.encode('y\0', 'latin1')
    EXPECT_EQ(t.as_bytes(a[10], ""), std::string("y\0", 2));
    const pickle_node& big = t.expect(dict_get(t, t.root(), "big"), pickle_kind::big_integer, "big");
    EXPECT_EQ(big.text, std::string("\x00\x00\x00\x00\x00\x00\x00\x00\x40", 9));  // 2**70, little-endian
    EXPECT_EQ(t.as_int(dict_get(t, t.root(), "neg"), ""), -129);
    EXPECT_EQ(t.sequence(dict_get(t, t.root(), "t"), 4, "t").size(), 4u);
  }
}

TEST(pickle, ordered_dict_and_latin1_bytes) {
  // pickle.dumps(OrderedDict([('k', 1)]), 2) and pickle.dumps(b'\x00\xff\x80abc', 2)
  const pickle_tree od = load(BYTES("\x80\x02\x63\x63\x6f\x6c\x6c\x65\x63\x74\x69\x6f\x6e\x73\x0a\x4f\x72\x64\x65\x72\x65\x64\x44\x69\x63"
                                    "\x74\x0a\x71\x00\x29\x52\x71\x01\x58\x01\x00\x00\x00\x6b\x71\x02\x4b\x01\x73\x2e"));
  EXPECT_EQ(od.as_int(dict_get(od, od.root(), "k"), ""), 1);
  const pickle_tree b = load(BYTES("\x80\x02\x63\x5f\x63\x6f\x64\x65\x63\x73\x0a\x65\x6e\x63\x6f\x64\x65\x0a\x71\x00\x58\x08\x00\x00\x00"
                                   "\x00\xc3\xbf\xc2\x80\x61\x62\x63\x71\x01\x58\x06\x00\x00\x00\x6c\x61\x74\x69\x6e\x31\x71\x02\x86\x71"
                                   "\x03\x52\x71\x04\x2e"));
  EXPECT_EQ(b.as_bytes(b.root(), ""), std::string("\x00\xff\x80" "abc", 6));
}

TEST(pickle, python2_strings_decode_as_latin1) {
  const pickle_tree t = load(BYTES("\x80\x02U\x02\xe9\x41."));  // SHORT_BINSTRING b'\xe9A'
  EXPECT_EQ(t.as_str(t.root(), ""), "\xc3\xa9" "A");
  EXPECT_EQ(t.as_bytes(t.root(), ""), "\xe9" "A");
}

TEST(pickle, unknown_globals_are_refused_by_name) {
  EXPECT_FACENET_ERROR(load(BYTES("\x80\x02" "cos\nsystem\nX\x02\x00\x00\x00ls\x85R.")), format_error, "'os.system' is not allowed");
  EXPECT_FACENET_ERROR(load(BYTES("\x80\x02" "cposix\nsystem\n.")), format_error, "'posix.system'");
  // Protocol 4 names globals through STACK_GLOBAL.
  EXPECT_FACENET_ERROR(load(BYTES("\x80\x04\x8c\x08" "builtins" "\x8c\x04" "eval" "\x93.")), format_error, "'builtins.eval' is not allowed");
  EXPECT_FACENET_ERROR(load(BYTES("\x80\x02" "ctorch\nload\n.")), format_error, "'torch.load'");
  // An allowed global called with a disallowed encoding is refused, not evaluated.
  EXPECT_FACENET_ERROR(load(BYTES("\x80\x02" "c_codecs\nencode\nX\x01\x00\x00\x00" "aX\x05\x00\x00\x00" "rot13\x86R.")), format_error,
                       "rot13");
}

TEST(pickle, opcodes_outside_the_allowed_set) {
  for (const std::string& bad : {BYTES("\x80\x02I1\n."), BYTES("\x80\x02" "P1\n."), BYTES("\x80\x02\x82\x01."), BYTES("\x80\x02(i__main__\nX\n."),
                                 BYTES("\x80\x02(o."), BYTES("\x80\x02Np0\n."), BYTES("\x80\x02\x8f."), BYTES("\x80\x02V1\n.")}) {
    EXPECT_FACENET_ERROR(load(bad), format_error, "is not allowed in a weights pickle");
  }
  EXPECT_FACENET_ERROR(load(BYTES("\x80\x09N.")), format_error, "protocol 9");
}

TEST(pickle, structural_errors) {
  EXPECT_FACENET_ERROR(load(BYTES("\x80\x02" "0.")), format_error, "stack underflow");
  EXPECT_FACENET_ERROR(load(BYTES("\x80\x02h\x05.")), format_error, "memo key 5 not defined");
  EXPECT_FACENET_ERROR(load(BYTES("\x80\x02NN.")), format_error, "2 values on the stack");
  EXPECT_FACENET_ERROR(load(BYTES("\x80\x02N")), format_error, "truncated");
  EXPECT_FACENET_ERROR(load(BYTES("\x80\x02t.")), format_error, "no MARK");
  EXPECT_FACENET_ERROR(load(BYTES("\x80\x02]NNs.")), format_error, "SETITEM(S) on a list");
  EXPECT_FACENET_ERROR(load(BYTES("\x80\x02}(Nu.")), format_error, "odd number");
  EXPECT_FACENET_ERROR(load(BYTES("\x80\x02}Na.")), format_error, "APPEND(S) on a dict");
  EXPECT_FACENET_ERROR(load(BYTES("\x80\x02K\x01)R.")), format_error, "REDUCE on a int");
  EXPECT_FACENET_ERROR(load(BYTES("\x80\x02" "(N.")), format_error, "values on the stack");
  EXPECT_FACENET_ERROR(load(BYTES("\x80\x02N.N")), format_error, "bytes after the pickle's STOP");
  // Declared lengths beyond the input.
  EXPECT_FACENET_ERROR(load(BYTES("\x80\x02X\xff\xff\xff\x7f" "abc.")), format_error, "truncated");
  EXPECT_FACENET_ERROR(load(BYTES("\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\xff" "abc.")), format_error, "truncated");
  EXPECT_FACENET_ERROR(load(BYTES("\x80\x02\x8b\xff\xff\xff\x7f.")), format_error, "truncated");
  EXPECT_FACENET_ERROR(load(BYTES("\x80\x02\x8b\xff\xff\xff\xff.")), format_error, "negative LONG4");
}

TEST(pickle, every_truncation_is_a_clean_error) {
  for (std::size_t n = 0; n < python_p2.size(); ++n) EXPECT_THROW(load(python_p2.substr(0, n)), format_error) << n;
}

TEST(pickle, deep_nesting_and_cycles_do_not_recurse) {
  // 200,000 nested lists built through the memo (each new list is appended to the previous one, then
  // fetched back as the next parent), so the stack stays at two; the arena keeps walking and
  // destruction flat however deep the nesting.
  const int depth = 200000;
  std::string nested = "\x80\x02]2";
  for (int i = 0; i < depth; ++i) nested += "]q\x01" "a0h\x01";
  const pickle_tree t = load(nested + "0.");
  EXPECT_EQ(t.size(), static_cast<std::size_t>(depth) + 1);
  std::size_t node = t.root();
  int levels = 0;
  while (!t.node(node).items.empty()) {
    node = t.node(node).items[0];
    ++levels;
  }
  EXPECT_EQ(levels, depth);
  // A list that contains itself (memo get of the list, then APPEND) is just an index cycle.
  const pickle_tree c = load(BYTES("\x80\x02]q\x00h\x00" "a."));
  EXPECT_EQ(c.node(c.root()).items.at(0), c.root());
}

TEST(pickle, stack_and_value_count_are_bounded) {
  const std::string many = "\x80\x02" + std::string(unpickler::max_stack + 1, 'N') + ".";
  EXPECT_FACENET_ERROR(load(many), format_error, "stack deeper than");
  // Values that do not stay on the stack (N then POP) still count.
  std::string churn = "\x80\x02";
  for (std::size_t i = 0; i <= unpickler::max_nodes; ++i) churn += "N0";
  EXPECT_FACENET_ERROR(load(churn + "N."), format_error, "values");
}
