// The facenet tool's subcommands. Each takes (argc, argv, index of its first argument) and returns
// the process exit code; errors propagate as facenet::error and are mapped to exit codes in main.
#pragma once

namespace facenet::cli {

struct command {
  const char* name;
  const char* summary;
  int (*run)(int argc, char** argv, int first);
};

int run_convert(int argc, char** argv, int first);
int run_detect(int argc, char** argv, int first);
int run_align(int argc, char** argv, int first);
int run_embed(int argc, char** argv, int first);
int run_verify(int argc, char** argv, int first);
int run_identify(int argc, char** argv, int first);
int run_cluster(int argc, char** argv, int first);
int run_train(int argc, char** argv, int first);
int run_eval_lfw(int argc, char** argv, int first);
int run_bench(int argc, char** argv, int first);
int run_demo(int argc, char** argv, int first);

}  // namespace facenet::cli
