// Data pipeline: identity lists, folder datasets (synthetic trees and the shared LFW / ORL copies),
// the P x K sampler, augmentation geometry, and the threaded loader's determinism and errors.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "facenet/data/augment.hpp"
#include "facenet/data/dataset.hpp"
#include "facenet/data/loader.hpp"
#include "facenet/data/sampler.hpp"
#include "testing.hpp"

using namespace facenet::data;
using facenet::Tensor;
namespace fs = std::filesystem;

namespace {

struct temp_dir {
  fs::path path = fs::temp_directory_path() / ("facenet_dataset_" + std::to_string(::getpid()) + "_" +
                                               ::testing::UnitTest::GetInstance()->current_test_info()->name());
  temp_dir() { fs::create_directories(path); }
  ~temp_dir() { fs::remove_all(path); }
  void write(const std::string& rel, const std::string& text) const {
    fs::create_directories((path / rel).parent_path());
    std::ofstream(path / rel, std::ios::binary) << text;
  }
};

// identities[i] has counts[i] images (file names only matter to the dataset).
face_dataset synthetic_dataset(const std::vector<int>& counts) {
  std::vector<identity> ids;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    identity id{"person" + std::to_string(100 + i), {}};
    for (int j = 0; j < counts[i]; ++j) id.images.push_back("syn/" + std::to_string(i) + "/" + std::to_string(j));
    ids.push_back(id);
  }
  return face_dataset(ids);
}

// Deterministic test pattern standing in for JPEG decoding: depends on the path only.
image synthetic_decoder(const std::string& path) {
  if (path.find("broken") != std::string::npos) throw facenet::format_error(path + ": not a decodable image");
  image img(40, 30, 3);
  const std::size_t h = std::hash<std::string>{}(path);
  for (int y = 0; y < 30; ++y)
    for (int x = 0; x < 40; ++x)
      for (int c = 0; c < 3; ++c) img.at(y, x, c) = static_cast<std::uint8_t>((x * 7 + y * 3 + c * 50 + h) % 256);
  return img;
}

image gradient_image(int w, int h) {
  image img(w, h, 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) img.at(y, x, c) = static_cast<std::uint8_t>((x * 11 + y * 5 + c * 40) % 256);
  return img;
}

}  // namespace

TEST(dataset, people_lists_in_lfw_and_plain_formats) {
  temp_dir t;
  t.write("view1.txt", "3\nAlice\t2\nBob\t1\n# comment\nCarol 5\n");
  t.write("plain.txt", "Alice\nBob\n");
  t.write("bad.txt", "4\nAlice 1\n");
  EXPECT_EQ(read_people_list((t.path / "view1.txt").string()), (std::vector<std::string>{"Alice", "Bob", "Carol"}));
  EXPECT_EQ(read_people_list((t.path / "plain.txt").string()), (std::vector<std::string>{"Alice", "Bob"}));
  EXPECT_THROW(read_people_list((t.path / "bad.txt").string()), facenet::format_error);
  EXPECT_THROW(read_people_list((t.path / "missing.txt").string()), facenet::io_error);
}

TEST(dataset, folder_per_identity_sorted_and_filtered) {
  temp_dir t;
  for (const char* f : {"b/2.png", "b/1.JPG", "b/notes.txt", "a/x.pgm", "c/1.jpg", "c/2.jpg", "c/3.jpeg"}) t.write(f, "x");
  fs::create_directories(t.path / "empty");
  const face_dataset all = face_dataset::from_folder(t.path.string());
  ASSERT_EQ(all.size(), 3u);  // "empty" has no images
  EXPECT_EQ(all.identities()[0].name, "a");
  EXPECT_EQ(all.identities()[1].images.size(), 2u);  // notes.txt is not an image
  EXPECT_EQ(fs::path(all.identities()[1].images[0]).filename(), "1.JPG");
  EXPECT_EQ(all.num_images(), 6u);
  EXPECT_EQ(all.samples()[3].label, 2);
  const face_dataset two = face_dataset::from_folder(t.path.string(), {}, 2);
  EXPECT_EQ(two.size(), 2u);
  const face_dataset listed = face_dataset::from_folder(t.path.string(), {"c", "a"});
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed.identities()[1].name, "c");
  EXPECT_THROW(face_dataset::from_folder(t.path.string(), {"zed"}), facenet::io_error);
  EXPECT_THROW(face_dataset::from_folder((t.path / "nope").string()), facenet::io_error);
}

TEST(dataset, lfw_view1_training_split) {
  FACENET_REQUIRE_SHARED("data/lfw/peopleDevTrain.txt");
  const fs::path lfw = facenet::testing::shared_dir() / "data/lfw";
  const auto people = read_people_list((lfw / "peopleDevTrain.txt").string());
  EXPECT_EQ(people.size(), 4038u);
  const face_dataset ds = face_dataset::from_folder((lfw / "images_deepfunneled").string(), people);
  EXPECT_EQ(ds.size(), 4038u);
  std::size_t multi = 0;
  for (const identity& id : ds.identities()) multi += id.images.size() >= 2;
  EXPECT_EQ(multi, 1184u);  // the identities a P x K batch can anchor
  const auto test_people = read_people_list((lfw / "peopleDevTest.txt").string());
  const std::set<std::string> train(people.begin(), people.end());
  for (const std::string& p : test_people) EXPECT_FALSE(train.count(p)) << p << " in both splits";
}

TEST(sampler, p_by_k_batches_are_valid_and_deterministic) {
  const face_dataset ds = synthetic_dataset({5, 2, 1, 4, 3, 6, 1, 4, 2, 1});
  pk_sampler s(ds, {3, 4, 2, 42});
  EXPECT_EQ(s.batches_per_epoch(), 7 / 3);
  EXPECT_EQ(s.batch_size(), 14);
  for (std::int64_t b = 0; b < 6; ++b) {
    const auto batch = s.batch(b);
    ASSERT_EQ(batch.size(), 14u);
    std::map<int, std::vector<std::string>> by_label;
    for (int i = 0; i < 12; ++i) by_label[batch[i].label].push_back(batch[i].path);
    EXPECT_EQ(by_label.size(), 3u);
    for (const auto& [label, paths] : by_label) {
      EXPECT_EQ(paths.size(), 4u);
      const std::size_t have = ds.identities()[label].images.size();
      EXPECT_GE(have, 2u);
      if (have >= 4) {
        EXPECT_EQ(std::set<std::string>(paths.begin(), paths.end()).size(), 4u) << "without replacement";
      }
    }
    for (int i = 12; i < 14; ++i) EXPECT_EQ(ds.identities()[batch[i].label].images.size(), 1u) << "negatives only";
  }
  pk_sampler again(ds, {3, 4, 2, 42}), other(ds, {3, 4, 2, 43});
  EXPECT_EQ(again.batch(5)[7].path, s.batch(5)[7].path);
  bool differs = false;
  for (std::int64_t b = 0; b < 6; ++b)
    for (std::size_t i = 0; i < 14; ++i) differs |= other.batch(b)[i].path != s.batch(b)[i].path;
  EXPECT_TRUE(differs);
}

TEST(sampler, extra_views_repeat_each_single_image_identity) {
  const face_dataset ds = synthetic_dataset({5, 1, 4, 1, 3, 1, 1});
  pk_options o{2, 3, 2, 11};
  o.extra_views = 3;
  pk_sampler s(ds, o);
  EXPECT_EQ(s.batch_size(), 2 * 3 + 2 * 3);
  std::set<int> extras_seen;
  for (std::int64_t b = 0; b < 40; ++b) {
    const auto batch = s.batch(b);
    ASSERT_EQ(batch.size(), 12u);
    for (std::size_t e = 6; e < 12; e += 3) {
      EXPECT_EQ(ds.identities()[batch[e].label].images.size(), 1u);
      for (std::size_t v = 1; v < 3; ++v) {  // the same photo and label, view after view
        EXPECT_EQ(batch[e + v].label, batch[e].label) << "batch " << b;
        EXPECT_EQ(batch[e + v].path, batch[e].path) << "batch " << b;
      }
      extras_seen.insert(batch[e].label);
    }
  }
  EXPECT_EQ(extras_seen.size(), 4u);  // every single-image identity drawn in 80 draws
  o.extra_views = 0;
  EXPECT_THROW(pk_sampler(ds, o), facenet::argument_error);
  o.extra_views = 1 << 30;  // 2 x 2^30 images: more than an int counts
  EXPECT_THROW(pk_sampler(ds, o), facenet::argument_error);
}

TEST(sampler, each_epoch_visits_identities_once) {
  const face_dataset ds = synthetic_dataset(std::vector<int>(12, 3));
  pk_sampler s(ds, {4, 2, 0, 7});
  for (std::int64_t epoch = 0; epoch < 3; ++epoch) {
    std::multiset<int> seen;
    for (std::int64_t b = 0; b < 3; ++b)
      for (const sample& x : s.batch(epoch * 3 + b)) seen.insert(x.label);
    for (int l = 0; l < 12; ++l) EXPECT_EQ(seen.count(l), 2u);
  }
  EXPECT_NE(s.batch(0)[0].label * 100 + s.batch(1)[0].label, s.batch(3)[0].label * 100 + s.batch(4)[0].label);
}

TEST(sampler, rejects_impossible_configurations) {
  const face_dataset ds = synthetic_dataset({3, 3, 1});
  EXPECT_THROW(pk_sampler(ds, {3, 2, 0, 0}), facenet::argument_error);  // only 2 identities with >= 2 images
  EXPECT_THROW(pk_sampler(ds, {2, 1, 0, 0}), facenet::argument_error);
  EXPECT_THROW(pk_sampler(synthetic_dataset({3, 3}), {2, 2, 1, 0}), facenet::argument_error);  // no singles
}

TEST(augment, identity_flip_and_shift_are_exact) {
  const image src = gradient_image(21, 21);
  augment_options o;
  o.out_size = 21;
  const image_f same = apply_augment(src, o, {});
  for (std::size_t i = 0; i < src.pixels.size(); ++i) ASSERT_EQ(same.pixels[i], src.pixels[i]);
  augment_params flip;
  flip.flip = true;
  const image_f mirrored = apply_augment(src, o, flip);
  for (int y = 0; y < 21; ++y)
    for (int x = 0; x < 21; ++x) ASSERT_EQ(mirrored.at(y, x, 1), src.at(y, 20 - x, 1));
  augment_params shift;
  shift.dx = 3, shift.dy = -2;
  const image_f moved = apply_augment(src, o, shift);
  EXPECT_EQ(moved.at(10, 10, 0), src.at(8, 13, 0));
  EXPECT_EQ(moved.at(0, 20, 0), 0.0f);  // outside the source: border
  augment_params rot;
  rot.angle_deg = 90;
  const image_f turned = apply_augment(src, o, rot);
  EXPECT_NEAR(turned.at(10, 15, 2), src.at(15, 10, 2), 1e-3);  // output (x=15,y=10) reads source (x=10,y=15)
  augment_params bright;
  bright.brightness = 1.5;
  EXPECT_FLOAT_EQ(apply_augment(src, o, bright).at(4, 4, 0), std::min(255.0f, 1.5f * src.at(4, 4, 0)));
}

TEST(augment, centre_crop_and_zoom_map_the_right_region) {
  const image src = gradient_image(250, 250);
  augment_options o;
  o.out_size = 64, o.crop_size = 128;
  const affine2d m = augment_transform(o, {}, 250, 250);
  // Output corners land on the corners of the centred 128 crop (pixel-centre convention).
  const double s = 128.0 / 64;
  EXPECT_NEAR(m[2], 124.5 - s * 31.5, 1e-12);
  EXPECT_NEAR(m[0] * 63 + m[2], 124.5 + s * 31.5, 1e-12);
  augment_params z;
  z.scale = 2;  // magnify: half the region
  EXPECT_NEAR(augment_transform(o, z, 250, 250)[0], s / 2, 1e-12);
  std::mt19937_64 rng(3);
  const augment_options train = training_augmentation(64, 128);
  for (int i = 0; i < 200; ++i) {
    const augment_params p = draw_augment(train, 250, 250, rng);
    EXPECT_LE(std::abs(p.angle_deg), 30);
    EXPECT_LE(std::abs(p.dx), 12.8 + 1e-9);
    EXPECT_GE(p.scale, 0.8);
    EXPECT_LE(p.scale, 1.2);
    EXPECT_GE(p.brightness, 0.8);
    EXPECT_LE(p.brightness, 1.2);
  }
  augment_options bad;
  bad.zoom = 1.5;
  EXPECT_THROW(apply_augment(src, bad, {}), facenet::argument_error);
}

TEST(augment, histogram_equalization_spreads_values) {
  image img(16, 16, 3);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 16; ++x)
      for (int c = 0; c < 3; ++c) img.at(y, x, c) = static_cast<std::uint8_t>(100 + (x + 16 * y) / 32);  // 8 levels, 100..107
  const image eq = equalize_histogram(img);
  int lo = 255, hi = 0;
  for (std::uint8_t v : eq.pixels) lo = std::min<int>(lo, v), hi = std::max<int>(hi, v);
  EXPECT_EQ(lo, 0);
  EXPECT_EQ(hi, 255);
  const image flat(4, 4, 3, 77);
  EXPECT_EQ(equalize_histogram(flat).pixels, flat.pixels);  // a constant image stays as it is
}

TEST(loader, deterministic_regardless_of_worker_count) {
  const face_dataset ds = synthetic_dataset({4, 4, 3, 5, 2, 6});
  pk_sampler s1(ds, {3, 2, 0, 9}), s2(ds, {3, 2, 0, 9});
  loader_options o;
  o.augment = training_augmentation(24, 28);
  o.seed = 5;
  o.workers = 1;
  batch_loader one(pk_source(s1), o, synthetic_decoder);
  o.workers = 3, o.prefetch = 3;
  batch_loader three(pk_source(s2), o, synthetic_decoder);
  for (int b = 0; b < 5; ++b) {
    loaded_batch x, y;
    ASSERT_TRUE(one.next(x));
    ASSERT_TRUE(three.next(y));
    EXPECT_EQ(x.index, b);
    EXPECT_EQ(y.index, b);
    EXPECT_EQ(x.labels, y.labels);
    ASSERT_EQ(x.images.shape(), (facenet::shape{6, 3, 24, 24}));
    EXPECT_EQ(0, std::memcmp(x.images.data(), y.images.data(), sizeof(float) * x.images.numel())) << "batch " << b;
  }
}

TEST(loader, image_cache_keeps_batches_identical) {
  const face_dataset ds = synthetic_dataset({3, 3, 3, 3});
  pk_sampler s1(ds, {2, 3, 0, 4}), s2(ds, {2, 3, 0, 4});
  loader_options o;
  o.augment = training_augmentation(20, 24);
  batch_loader plain(pk_source(s1), o, synthetic_decoder);
  o.cache = std::make_shared<image_cache>(std::size_t(1) << 20);
  batch_loader cached(pk_source(s2), o, synthetic_decoder);
  for (int b = 0; b < 6; ++b) {
    loaded_batch x, y;
    ASSERT_TRUE(plain.next(x));
    ASSERT_TRUE(cached.next(y));
    EXPECT_EQ(0, std::memcmp(x.images.data(), y.images.data(), sizeof(float) * x.images.numel())) << "batch " << b;
  }
  EXPECT_GT(o.cache->hits(), 0u);  // 12 images, 36 samples drawn
  EXPECT_LE(o.cache->bytes(), 12u * 40 * 30 * 3);
  image_cache tiny(100);  // budget below one image: decodes every time, keeps nothing
  tiny.get("syn/a", synthetic_decoder);
  tiny.get("syn/a", synthetic_decoder);
  EXPECT_EQ(tiny.hits(), 0u);
  EXPECT_EQ(tiny.bytes(), 0u);
}

TEST(loader, extra_views_are_augmented_apart) {
  const face_dataset ds = synthetic_dataset({3, 3, 1, 1});
  pk_options po{2, 2, 2, 3};
  po.extra_views = 2;
  pk_sampler s(ds, po);
  loader_options o;
  o.augment = training_augmentation(20, 24);
  batch_loader l(pk_source(s), o, synthetic_decoder);
  const std::size_t plane = 3 * 20 * 20;
  for (int b = 0; b < 4; ++b) {
    loaded_batch x;
    ASSERT_TRUE(l.next(x));
    ASSERT_EQ(x.images.size(0), 8);
    for (std::size_t e = 4; e < 8; e += 2) {
      EXPECT_EQ(x.labels[e], x.labels[e + 1]);
      EXPECT_NE(0, std::memcmp(x.images.data() + e * plane, x.images.data() + (e + 1) * plane, sizeof(float) * plane))
          << "batch " << b << ": two views of one photo came out identical";
    }
  }
}

TEST(loader, list_source_evaluation_and_flip) {
  std::vector<sample> list;
  for (int i = 0; i < 7; ++i) list.push_back({"syn/eval/" + std::to_string(i), i});
  loader_options o;
  o.random = false;
  o.augment.out_size = 30;
  o.standardize = standardization::none;
  batch_loader plain(list_source(list, 3), o, synthetic_decoder);
  o.flip_all = true;
  batch_loader flipped(list_source(list, 3), o, synthetic_decoder);
  std::vector<std::int64_t> sizes;
  loaded_batch a, b;
  while (plain.next(a)) {
    ASSERT_TRUE(flipped.next(b));
    sizes.push_back(a.images.size(0));
    // Unaugmented 40x30 source, crop 30 centred -> columns 5..34; the flipped copy mirrors them.
    const image src = synthetic_decoder(a.paths[0]);
    EXPECT_EQ(a.images(0, 1, 4, 0), src.at(4, 5, 1));
    EXPECT_EQ(b.images(0, 1, 4, 0), src.at(4, 34, 1));
  }
  EXPECT_FALSE(flipped.next(b));
  EXPECT_EQ(sizes, (std::vector<std::int64_t>{3, 3, 1}));
}

TEST(loader, decode_errors_surface_as_facenet_errors) {
  std::vector<sample> list = {{"syn/ok/0", 0}, {"syn/broken/1", 1}, {"syn/ok/2", 2}};
  loader_options o;
  batch_loader l(list_source(list, 2), o, synthetic_decoder);
  loaded_batch x;
  EXPECT_THROW(l.next(x), facenet::format_error);
  EXPECT_TRUE(l.next(x));  // the loader keeps going after a bad batch
  EXPECT_EQ(x.labels, (std::vector<int>{2}));
  batch_loader missing(list_source({{"/nonexistent/a.jpg", 0}}, 1), o);
  EXPECT_THROW(missing.next(x), facenet::io_error);
  o.workers = 0;
  EXPECT_THROW(batch_loader(list_source(list, 1), o, synthetic_decoder), facenet::argument_error);
}

TEST(loader, decodes_orl_pgm_faces) {
  FACENET_REQUIRE_SHARED("data/orl/s1/1.pgm");
  const face_dataset ds = face_dataset::from_folder((facenet::testing::shared_dir() / "data/orl").string());
  EXPECT_EQ(ds.size(), 40u);
  EXPECT_EQ(ds.num_images(), 400u);
  pk_sampler s(ds, {4, 3, 0, 1});
  loader_options o;
  o.augment = training_augmentation(64, 92);
  o.standardize = standardization::prewhiten;
  batch_loader l(pk_source(s), o);
  loaded_batch x;
  ASSERT_TRUE(l.next(x));
  EXPECT_EQ(x.images.shape(), (facenet::shape{12, 3, 64, 64}));
  double sum = 0;
  for (std::int64_t i = 0; i < 3 * 64 * 64; ++i) sum += x.images.data()[i];
  EXPECT_NEAR(sum / (3 * 64 * 64), 0.0, 1e-3);  // prewhitened
}
