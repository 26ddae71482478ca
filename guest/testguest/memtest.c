/* memtest N [R]: writes and verifies N MiB above the guest image, R rounds
 * (0 = forever), all in ring 3 at native speed. The pattern is the address
 * XOR a per-round seed, so every word changes from one round to the next and
 * a write that never reached RAM (a stale page) shows up. */
#include "guest.h"

#define MIB (1ull << 20)
#define MAX_CORRUPT_LINES 16

static struct memtest_segment segments[MEMTEST_MAX_SEGMENTS];
static unsigned segment_count;

/* Picks N MiB of RAM above the image (and below the mapped 64 GiB) from the
 * memory map into `out` (MEMTEST_MAX_SEGMENTS entries, `*count` of them used);
 * returns the MiB available if that is less. */
uint64_t memtest_choose_segments(uint64_t mib, struct memtest_segment* out, unsigned* count) {
  uint64_t floor = ((uint64_t)(uintptr_t)image_end + MIB - 1) & ~(MIB - 1);
  uint64_t ceiling = (uint64_t)MAPPED_GIB << 30;
  uint64_t want = mib * MIB, have = 0;
  *count = 0;
  for (unsigned i = 0; i < ram_range_count && have < want; i++) {
    uint64_t start = ram_ranges[i].start < floor ? floor : ram_ranges[i].start;
    uint64_t end = ram_ranges[i].end > ceiling ? ceiling : ram_ranges[i].end;
    start = (start + 4095) & ~4095ull;
    end &= ~4095ull;
    if (end <= start) continue;
    if (end - start > want - have) end = start + (want - have);
    out[*count].start = (uint64_t*)start;
    out[*count].end = (uint64_t*)end;
    ++*count;
    have += end - start;
  }
  return have / MIB;
}

uint64_t memtest_round_seed(uint64_t round) { return round * 0x9e3779b97f4a7c15ull ^ 0x5a5a5a5a5a5a5a5aull; }

void memtest_write(const struct memtest_segment* segs, unsigned count, uint64_t seed) {
  for (unsigned s = 0; s < count; s++) {
    for (uint64_t* p = segs[s].start; p < segs[s].end; p++) *p = (uint64_t)(uintptr_t)p ^ seed;
  }
  compiler_barrier();
}

/* Counts the words that differ; prints the first MAX_CORRUPT_LINES of them
 * (over all calls sharing `printed`). */
uint64_t memtest_verify(const struct memtest_segment* segs, unsigned count, uint64_t seed, uint64_t* printed) {
  uint64_t errors = 0;
  for (unsigned s = 0; s < count; s++) {
    for (uint64_t* p = segs[s].start; p < segs[s].end; p++) {
      uint64_t expected = (uint64_t)(uintptr_t)p ^ seed;
      uint64_t got = *(volatile uint64_t*)p;
      if (got == expected) continue;
      errors++;
      if (*printed < MAX_CORRUPT_LINES) {
        printf("@memtest corrupt addr=%#lx expected=%#lx got=%#lx\n", (uint64_t)(uintptr_t)p, expected, got);
        ++*printed;
      }
    }
  }
  return errors;
}

int scenario_memtest(int argc, char** argv) {
  uint64_t mib = 0, rounds = 1;
  if (argc < 2 || !parse_u64(argv[1], &mib) || mib == 0 || (argc > 2 && !parse_u64(argv[2], &rounds))) {
    fail("bad-arguments");
  }
  clock_init();
  uint64_t available = memtest_choose_segments(mib, segments, &segment_count);
  if (available < mib) {
    printf("@memtest too-large mib=%lu available=%lu\n", mib, available);
    fail("memtest-too-large");
  }
  printf("testguest: memtest %lu MiB from %#lx, %lu round(s)\n", mib, (uint64_t)(uintptr_t)segments[0].start,
         rounds);
  uint64_t total_errors = 0, printed = 0;
  for (uint64_t round = 1; rounds == 0 || round <= rounds; round++) {
    uint64_t seed = memtest_round_seed(round);
    uint64_t t0 = rdtsc();
    memtest_write(segments, segment_count, seed);
    uint64_t t1 = rdtsc();
    uint64_t errors = memtest_verify(segments, segment_count, seed, &printed);
    uint64_t t2 = rdtsc();
    uint64_t write_us = tsc_to_us(t1 - t0), verify_us = tsc_to_us(t2 - t1);
    uint64_t mib_per_s = write_us != 0 ? mib * 1000000 / write_us : 0;
    printf("@memtest round=%lu mib=%lu write_us=%lu verify_us=%lu write_mib_s=%lu errors=%lu %s\n", round, mib,
           write_us, verify_us, mib_per_s, errors, errors == 0 ? "ok" : "fail");
    total_errors += errors;
  }
  if (total_errors != 0) fail("memtest-corrupt");
  return 0;
}
