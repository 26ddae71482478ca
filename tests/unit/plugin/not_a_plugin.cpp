// A perfectly good shared object that is not a molt plugin.
extern "C" __attribute__((visibility("default"))) int molt_test_answer() { return 42; }
