// Training safety of the real `facenet train` process: SIGKILL at random moments (and deliberately in
// the middle of a checkpoint write) never leaves a torn checkpoint, every resume continues, and the
// final weights equal an uninterrupted run's bit for bit; a full disk (RLIMIT_FSIZE) and an unwritable
// checkpoint directory are clear io errors (exit 3) that keep the last good checkpoint.
//
// Runs on a generated folder of PGM faces, so it never depends on external data.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "facenet/io/safetensors.hpp"
#include "facenet/train/checkpoint.hpp"
#include "testing.hpp"

namespace fs = std::filesystem;
using namespace facenet;
using clock_type = std::chrono::steady_clock;

namespace {

// $FACENET_TOOL runs the test against another build of the tool (e.g. a sanitized one).
fs::path tool() {
  if (const char* env = std::getenv("FACENET_TOOL"); env && *env) return env;
  return fs::path(FACENET_BINARY_DIR) / "tools" / "facenet" / "facenet";
}

fs::path scratch_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("facenet_test_checkpoint_kill_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// 6 people x 3 images of 96x96 grey noise around a per-person pattern: enough for P x K = 2 x 2
// batches with triplets, small enough that a step takes a fraction of a second.
fs::path synthetic_faces() {
  const fs::path root = scratch_dir("faces");
  std::mt19937 rng(42);
  for (int p = 0; p < 6; ++p) {
    fs::create_directories(root / ("p" + std::to_string(p)));
    for (int i = 0; i < 3; ++i) {
      std::ofstream out(root / ("p" + std::to_string(p)) / (std::to_string(i) + ".pgm"), std::ios::binary);
      out << "P5\n96 96\n255\n";
      for (int y = 0; y < 96; ++y)
        for (int x = 0; x < 96; ++x) {
          const int pattern = ((x / (8 + p)) + (y / (5 + 2 * p))) % 2 ? 180 : 60;
          out.put(static_cast<char>(std::clamp(pattern + static_cast<int>(rng() % 41) - 20, 0, 255)));
        }
    }
  }
  return root;
}

struct child_options {
  fs::path log;             // stdout and stderr go here
  rlim_t max_file_size = 0;  // > 0: RLIMIT_FSIZE, with SIGXFSZ ignored so writes fail with EFBIG
};

// A running facenet tool. Reaps itself once, so a status read while polling is never lost.
class child {
 public:
  child(const std::vector<std::string>& args, const child_options& o) {
    std::vector<std::string> full{tool().string()};
    full.insert(full.end(), args.begin(), args.end());
    std::vector<char*> argv, envp;
    for (auto& a : full) argv.push_back(a.data());
    argv.push_back(nullptr);
    static char threads[] = "OMP_NUM_THREADS=1";  // the kernels are bit-reproducible for a fixed count
    for (char** e = environ; *e; ++e)
      if (std::strncmp(*e, "OMP_NUM_THREADS=", 16) != 0) envp.push_back(*e);
    envp.push_back(threads);
    envp.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ != 0) return;
    // In the child: only async-signal-safe calls until exec.
    const int fd = ::open(o.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) ::dup2(fd, 1), ::dup2(fd, 2);
    if (o.max_file_size > 0) {
      ::signal(SIGXFSZ, SIG_IGN);
      const rlimit lim{o.max_file_size, o.max_file_size};
      ::setrlimit(RLIMIT_FSIZE, &lim);
    }
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  child(const child&) = delete;
  child& operator=(const child&) = delete;
  ~child() {
    if (!running()) return;
    ::kill(pid_, SIGKILL);
    wait();
  }

  bool running() {
    if (!done_ && ::waitpid(pid_, &status_, WNOHANG) == pid_) done_ = true;
    return !done_;
  }
  void kill() { ::kill(pid_, SIGKILL); }

  // Waits at most `limit`; a hang is killed and reported as a failure. Returns the wait status.
  int wait(std::chrono::seconds limit = std::chrono::seconds(600)) {
    const auto deadline = clock_type::now() + limit;
    if (!wait_until([&] { return clock_type::now() > deadline; })) return status_;
    ADD_FAILURE() << "facenet train did not finish within " << limit.count() << " s";
    kill();
    while (running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return status_;
  }

  // Polls every millisecond until `done()` or the exit; true when `done()` held first.
  template <class Pred>
  bool wait_until(Pred done) {
    while (running()) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  }

 private:
  pid_t pid_ = -1;
  int status_ = 0;
  bool done_ = false;
};

struct train_run {
  fs::path data, checkpoint_dir, out;
  int steps = 10;
};

std::vector<std::string> train_args(const train_run& r, bool resume) {
  std::vector<std::string> a{"train", "--data", r.data.string(), "--out", r.out.string(), "--steps", std::to_string(r.steps),
                             "--batch-people", "2", "--batch-images", "2", "--seed", "7", "--lr", "0.01",
                             "--checkpoint", r.checkpoint_dir.string(), "--checkpoint-every", "1", "--threads", "1",
                             "--workers", "2"};
  if (resume) a.push_back("--resume");
  return a;
}

fs::path checkpoint_file(const train_run& r) { return train::checkpoint_path(r.checkpoint_dir.string()); }

ino_t inode_of(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? st.st_ino : 0;
}

int run_to_end(const std::vector<std::string>& args, const child_options& o) { return child(args, o).wait(); }

std::string exit_text(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

void expect_same_weights(const io::tensor_map& a, const io::tensor_map& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& e : a.entries()) {
    const Tensor<float>& other = b.at(e.name);
    ASSERT_EQ(e.value.shape(), other.shape()) << e.name;
    EXPECT_EQ(std::memcmp(e.value.data(), other.data(), static_cast<std::size_t>(e.value.numel()) * sizeof(float)), 0)
        << e.name << " differs from the uninterrupted run";
  }
}

// Every row of the CSV log, minus the header, by step.
std::vector<std::int64_t> logged_steps(const fs::path& csv) {
  std::ifstream in(csv);
  std::string line;
  std::getline(in, line);
  std::vector<std::int64_t> steps;
  while (std::getline(in, line)) steps.push_back(std::stoll(line.substr(0, line.find(','))));
  return steps;
}

}  // namespace

TEST(CheckpointKill, SigkillAtRandomMomentsNeverTearsTheCheckpointAndResumeIsBitExact) {
  ASSERT_TRUE(fs::exists(tool())) << "the facenet tool was not built at " << tool() << " (build the facenet_tool target)";
  const fs::path data = synthetic_faces();

  // The uninterrupted run, timed so the kill delays scale with this machine (and sanitizer builds).
  train_run straight{data, scratch_dir("straight"), scratch_dir("straight_out") / "w.safetensors"};
  const auto t0 = clock_type::now();
  child ref(train_args(straight, false), {straight.checkpoint_dir / "log.txt"});
  ref.wait_until([&] { return fs::exists(checkpoint_file(straight)); });
  const double startup = std::chrono::duration<double>(clock_type::now() - t0).count();
  const int ref_status = ref.wait();
  const double total = std::chrono::duration<double>(clock_type::now() - t0).count();
  ASSERT_TRUE(WIFEXITED(ref_status) && WEXITSTATUS(ref_status) == 0)
      << exit_text(ref_status) << ": " << slurp(straight.checkpoint_dir / "log.txt");
  const double per_step = (total - startup) / (straight.steps - 1);
  std::printf("[ INFO     ] uninterrupted run: %.2f s to the first checkpoint, %.3f s per step, %.2f s total\n", startup,
              per_step, total);

  // The killed run: up to 15 lives, each ended by SIGKILL; every third one right inside a checkpoint
  // write. Lives stop once the checkpoint holds the last step: a life after that has nothing left to
  // do and ends before any kill (on a loaded machine lives can get that far: 9 kills in 15 lives).
  train_run killed{data, scratch_dir("killed"), scratch_dir("killed_out") / "w.safetensors"};
  std::mt19937_64 rng(2024);
  std::int64_t last_step = -1;
  int lives = 0, kills = 0, torn_temp_files = 0, mid_training = 0;
  for (int life = 0; life < 15 && last_step < straight.steps; ++life) {
    ++lives;
    const bool resume = fs::exists(checkpoint_file(killed));
    const ino_t before = inode_of(checkpoint_file(killed));
    child life_process(train_args(killed, resume), {killed.checkpoint_dir / "log.txt"});
    bool alive;
    if (life % 3 == 2) {
      // Let one checkpoint of this life land (a fresh inode), then kill as soon as the next temp
      // file appears: the moment a non-atomic writer would leave a torn file behind.
      const fs::path tmp = checkpoint_file(killed).string() + ".tmp";
      alive = life_process.wait_until([&] { return inode_of(checkpoint_file(killed)) != before; }) &&
              life_process.wait_until([&] { return fs::exists(tmp); });
    } else {
      const double delay = std::uniform_real_distribution<double>(0.0, startup + 1.5 * per_step)(rng);
      const auto until = clock_type::now() + std::chrono::duration<double>(delay);
      alive = life_process.wait_until([&] { return clock_type::now() >= until; });
    }
    if (alive) {
      life_process.kill();
      ++kills;
    }
    const int status = life_process.wait();
    if (!alive) {  // finished before the kill: must have succeeded
      ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
          << "life " << life << ": " << exit_text(status) << ": " << slurp(killed.checkpoint_dir / "log.txt");
    }
    if (fs::exists(checkpoint_file(killed).string() + ".tmp")) ++torn_temp_files;
    if (!fs::exists(checkpoint_file(killed))) continue;  // killed before the first checkpoint
    train::checkpoint c;
    ASSERT_NO_THROW(c = train::load_checkpoint(checkpoint_file(killed).string()))
        << "life " << life << ": the checkpoint after SIGKILL does not load";
    EXPECT_GE(c.step, last_step) << "life " << life << ": the checkpoint went backwards";
    if (c.step > std::max<std::int64_t>(last_step, 0)) ++mid_training;
    last_step = c.step;
  }
  std::printf("[ INFO     ] %d lives, %d kills, %d left a partial temp file, %d lives advanced the checkpoint, last step %lld\n",
              lives, kills, torn_temp_files, mid_training, static_cast<long long>(last_step));
  EXPECT_GE(kills, lives - 2) << "most lives should have been killed, not finished";
  EXPECT_GE(kills, 6) << "too few kills to mean anything";
  EXPECT_GE(torn_temp_files, 1) << "no kill landed inside a checkpoint write";

  // Finish without interruption and compare with the straight run.
  child last(train_args(killed, fs::exists(checkpoint_file(killed))), {killed.checkpoint_dir / "log.txt"});
  const int last_status = last.wait();
  ASSERT_TRUE(WIFEXITED(last_status) && WEXITSTATUS(last_status) == 0)
      << exit_text(last_status) << ": " << slurp(killed.checkpoint_dir / "log.txt");
  expect_same_weights(io::load_safetensors(straight.out.string()), io::load_safetensors(killed.out.string()));
  const train::checkpoint a = train::load_checkpoint(checkpoint_file(straight).string());
  const train::checkpoint b = train::load_checkpoint(checkpoint_file(killed).string());
  EXPECT_EQ(b.step, straight.steps);
  EXPECT_EQ(a.rng, b.rng);
  expect_same_weights(a.optimizer, b.optimizer);
  // The CSV log holds every step exactly once, in order, despite the kills.
  std::vector<std::int64_t> expected(static_cast<std::size_t>(straight.steps));
  for (std::size_t i = 0; i < expected.size(); ++i) expected[i] = static_cast<std::int64_t>(i);
  EXPECT_EQ(logged_steps(killed.checkpoint_dir / "training_log.csv"), expected);
}

// A full disk while writing a checkpoint: the write fails with EFBIG (RLIMIT_FSIZE below the
// checkpoint's size), the tool exits 3 naming the file, and the step-2 checkpoint stays loadable.
TEST(CheckpointKill, FullDiskIsAnIoErrorAndKeepsTheLastGoodCheckpoint) {
  ASSERT_TRUE(fs::exists(tool())) << "the facenet tool was not built at " << tool();
  train_run r{synthetic_faces(), scratch_dir("full"), scratch_dir("full_out") / "w.safetensors", 2};
  const fs::path log = scratch_dir("full_log") / "log.txt";
  ASSERT_EQ(run_to_end(train_args(r, false), {log}), 0) << slurp(log);
  const auto size = fs::file_size(checkpoint_file(r));
  const std::string good = slurp(checkpoint_file(r));

  r.steps = 4;
  const int status = run_to_end(train_args(r, true), {log, static_cast<rlim_t>(size / 2)});
  const std::string err = slurp(log);
  ASSERT_TRUE(WIFEXITED(status)) << exit_text(status) << ": " << err;
  EXPECT_EQ(WEXITSTATUS(status), 3) << err;
  EXPECT_NE(err.find("[facenet.io]"), std::string::npos) << err;
  EXPECT_NE(err.find("checkpoint.safetensors.tmp"), std::string::npos) << err;
  EXPECT_NE(err.find("File too large"), std::string::npos) << err;
  EXPECT_NE(err.find("bytes written"), std::string::npos) << err;
  EXPECT_EQ(slurp(checkpoint_file(r)), good) << "the last good checkpoint was changed";
  EXPECT_FALSE(fs::exists(checkpoint_file(r).string() + ".tmp")) << "the partial temp file was left behind";
  EXPECT_EQ(train::load_checkpoint(checkpoint_file(r).string()).step, 2);
}

// A checkpoint directory that cannot be created (a file is in the way) and one whose temp file cannot
// be created: exit 3, a message naming the path, the previous checkpoint untouched. (Both work as root,
// where permission bits would not stop a write.)
TEST(CheckpointKill, UnwritableCheckpointDirectoryIsAnIoError) {
  ASSERT_TRUE(fs::exists(tool())) << "the facenet tool was not built at " << tool();
  const fs::path data = synthetic_faces(), scratch = scratch_dir("unwritable");
  const fs::path log = scratch / "log.txt";
  std::ofstream(scratch / "a_file") << "x";

  train_run blocked{data, scratch / "a_file" / "ckpt", scratch / "w.safetensors", 2};
  int status = run_to_end(train_args(blocked, false), {log});
  std::string err = slurp(log);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3) << exit_text(status) << ": " << err;
  EXPECT_NE(err.find("[facenet.io]"), std::string::npos) << err;
  EXPECT_NE(err.find((scratch / "a_file" / "ckpt").string()), std::string::npos) << err;

  train_run r{data, scratch / "ckpt", scratch / "w.safetensors", 2};
  ASSERT_EQ(run_to_end(train_args(r, false), {log}), 0) << slurp(log);
  const std::string good = slurp(checkpoint_file(r));
  fs::create_directory(checkpoint_file(r).string() + ".tmp");  // the temp file cannot be opened for writing
  r.steps = 4;
  status = run_to_end(train_args(r, true), {log});
  err = slurp(log);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3) << exit_text(status) << ": " << err;
  EXPECT_NE(err.find("cannot create '" + checkpoint_file(r).string() + ".tmp'"), std::string::npos) << err;
  EXPECT_EQ(slurp(checkpoint_file(r)), good);
  EXPECT_EQ(train::load_checkpoint(checkpoint_file(r).string()).step, 2);
}
