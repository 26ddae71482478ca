/* `counter`: a driver for the example out-of-tree plugin pci-counter
 * (examples/pci-counter), written from the register table in
 * docs/sdk-guide.md. It finds the function 1234:4d43 on PCI bus 0, places
 * BAR0 in the MMIO hole (no firmware assigned it), counts through MMIO from
 * user mode, and takes the threshold and doorbell interrupts on the GSI its
 * INTx pin is routed to. Prints `@counter ...` lines.
 *
 * The IOAPIC input is programmed edge-triggered although PCI INTx is a level
 * signal: the test guest's ring-0 stub sends the EOI before user mode can
 * clear the device's STATUS, and a level entry would have KVM's IOAPIC
 * deliver again on that EOI for as long as the line stays asserted. An edge
 * entry gives one interrupt per rising edge of the line, which is exactly
 * what this scenario counts. */
#include "guest.h"
#include "irq.h"

#define PCI_ADDRESS 0xcf8
#define PCI_DATA 0xcfc
#define PCI_COMMAND_MEMORY 0x0002u
#define PCI_COMMAND_INTX_DISABLE 0x0400u

#define COUNTER_VENDOR 0x1234u
#define COUNTER_DEVICE 0x4d43u
#define COUNTER_ID_VALUE 0x52544e43u   /* "CNTR" */
#define COUNTER_BAR_BASE 0xc0000000ull /* start of the MMIO hole */

/* BAR0 registers, 32 bits each. */
#define REG_ID 0x00
#define REG_COUNT 0x04
#define REG_RESET 0x08
#define REG_THRESHOLD 0x0c
#define REG_STATUS 0x10
#define REG_INTERRUPT_ENABLE 0x14
#define REG_DOORBELL 0x18
#define CAUSE_THRESHOLD 0x1u
#define CAUSE_DOORBELL 0x2u

#define IRQ_TIMEOUT_US 1000000
#define QUIET_US 2000 /* how long "no interrupt" is watched for */

static uint64_t bar;

static uint32_t config_read(unsigned slot, unsigned reg) {
  outl(PCI_ADDRESS, 0x80000000u | (slot << 11) | (reg & 0xfc));
  return inl(PCI_DATA);
}

static void config_write(unsigned slot, unsigned reg, uint32_t value) {
  outl(PCI_ADDRESS, 0x80000000u | (slot << 11) | (reg & 0xfc));
  outl(PCI_DATA, value);
}

static uint32_t rd(unsigned reg) {
  return mmio_read32(bar + reg);
}
static void wr(unsigned reg, uint32_t value) {
  mmio_write32(bar + reg, value);
}

static int find_counter(void) {
  for (unsigned slot = 0; slot < 32; ++slot) {
    if (config_read(slot, 0x00) == ((COUNTER_DEVICE << 16) | COUNTER_VENDOR)) return (int)slot;
  }
  return -1;
}

/* Sizes BAR0 and places it at the first aligned address of the hole. */
static void place_bar(unsigned slot) {
  config_write(slot, 0x10, 0xffffffffu);
  const uint32_t mask = config_read(slot, 0x10);
  if ((mask & 0x7) != 0) fail("counter-bar-not-mem32");
  const uint64_t size = (uint64_t)(~(mask & 0xfffffff0u)) + 1;
  if (size < 16 || size > (1u << 20)) fail("counter-bar-size");
  bar = (COUNTER_BAR_BASE + size - 1) & ~(size - 1);
  config_write(slot, 0x10, (uint32_t)bar);
  const uint32_t command = config_read(slot, 0x04) & 0xffff;
  config_write(slot, 0x04, (command | PCI_COMMAND_MEMORY) & ~PCI_COMMAND_INTX_DISABLE);
  printf("@counter bar0=0x%lx size=%lu\n", bar, size);
}

static void expect_count(uint32_t expected, const char* reason) {
  const uint32_t got = rd(REG_COUNT);
  if (got != expected) {
    printf("counter: COUNT is %u, expected %u\n", got, expected);
    fail(reason);
  }
}

static void counting(void) {
  wr(REG_RESET, 0);
  wr(REG_COUNT, 5);
  wr(REG_COUNT, 37);
  expect_count(42, "counter-add");
  wr(REG_RESET, 0);
  expect_count(0, "counter-reset");
  wr(REG_COUNT, 0xfffffff0u);
  wr(REG_COUNT, 0x100);
  expect_count(0xffffffffu, "counter-saturate");
  wr(REG_RESET, 0);
  printf("@counter counting ok\n");
}

/* Acknowledges `cause` and checks STATUS is clear afterwards. */
static void acknowledge(uint32_t cause) {
  if ((rd(REG_STATUS) & cause) == 0) fail("counter-status-missing");
  wr(REG_STATUS, cause);
  if (rd(REG_STATUS) != 0) fail("counter-status-stuck");
}

static unsigned threshold_interrupt(int irq) {
  wr(REG_RESET, 0);
  wr(REG_THRESHOLD, 100);
  wr(REG_INTERRUPT_ENABLE, CAUSE_THRESHOLD | CAUSE_DOORBELL);
  uint64_t seen = irq_count(irq);
  for (int i = 0; i < 9; ++i) wr(REG_COUNT, 10);
  if (rd(REG_STATUS) != 0 || irq_wait(irq, seen, QUIET_US)) fail("counter-early-interrupt");
  wr(REG_COUNT, 10); /* 100: the threshold is reached */
  if (!irq_wait(irq, seen, IRQ_TIMEOUT_US)) fail("counter-no-threshold-interrupt");
  expect_count(100, "counter-threshold-count");
  acknowledge(CAUSE_THRESHOLD);
  printf("@counter threshold=100 count=%u irq=ok\n", rd(REG_COUNT));
  return 1;
}

static unsigned doorbell_interrupts(int irq) {
  uint64_t seen = irq_count(irq);
  wr(REG_DOORBELL, 1);
  if (!irq_wait(irq, seen, IRQ_TIMEOUT_US)) fail("counter-no-doorbell-interrupt");
  acknowledge(CAUSE_DOORBELL);

  /* Disabled: the cause is raised but the line stays low... */
  wr(REG_INTERRUPT_ENABLE, 0);
  seen = irq_count(irq);
  wr(REG_DOORBELL, 1);
  if (irq_wait(irq, seen, QUIET_US)) fail("counter-masked-interrupt");
  if (rd(REG_STATUS) != CAUSE_DOORBELL) fail("counter-status-missing");
  /* ...until it is enabled while raised. */
  wr(REG_INTERRUPT_ENABLE, CAUSE_DOORBELL);
  if (!irq_wait(irq, seen, IRQ_TIMEOUT_US)) fail("counter-no-enable-interrupt");
  acknowledge(CAUSE_DOORBELL);
  printf("@counter doorbell irq=ok masked=ok\n");
  return 2;
}

int scenario_counter(int argc, char** argv) {
  (void)argc;
  (void)argv;
  const int slot = find_counter();
  if (slot < 0) fail("no-counter");
  const unsigned pin = (config_read((unsigned)slot, 0x3c) >> 8) & 0xff;
  if (pin < 1 || pin > 4) fail("counter-no-pin");
  const unsigned gsi = 16 + (((unsigned)slot + pin - 1) & 3);
  printf("@counter found dev=00:%02x.0 pin=%u gsi=%u\n", (unsigned)slot, pin, gsi);

  place_bar((unsigned)slot);
  if (rd(REG_ID) != COUNTER_ID_VALUE) fail("counter-bad-id");
  counting();

  const int irq = irq_route(gsi, IRQ_EDGE_HIGH);
  if (irq < 0) fail("counter-no-irq-slot");
  unsigned expected = threshold_interrupt(irq);
  expected += doorbell_interrupts(irq);
  irq_mask(gsi);
  const uint64_t taken = irq_count(irq);
  printf("@counter done interrupts=%lu\n", taken);
  if (taken != expected) fail("counter-interrupt-count");
  return 0;
}
