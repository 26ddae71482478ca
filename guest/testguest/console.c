/* COM1 16550A console and printf.
 *
 * Every port access is a trip through ring 0 (emulated on our hosts), so the
 * driver keeps them few: the divisor is set once, and instead of polling LSR
 * before each byte it waits for THRE (transmit FIFO empty) once and then pushes
 * up to 16 bytes, the FIFO depth: 17 port accesses per 16 bytes. */
#include "guest.h"

#define UART_THR 0
#define UART_IER 1
#define UART_DLL 0
#define UART_DLM 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define UART_FIFO_DEPTH 16
#define UART_POLL_LIMIT 1000000 /* a missing UART reads 0xff and never stalls us */

static unsigned fifo_room; /* bytes the TX FIFO can take without another LSR poll */
static volatile int console_lock;

static void lock_console(void) {
  while (__atomic_exchange_n(&console_lock, 1, __ATOMIC_ACQUIRE) != 0) cpu_relax();
}
static void unlock_console(void) { __atomic_store_n(&console_lock, 0, __ATOMIC_RELEASE); }

/* For the fault path: the faulting code may have held the lock. */
void console_break_lock(void) {
  unlock_console();
  fifo_room = 0;
}

void console_init(void) {
  outb(COM1_PORT + UART_IER, 0x00);  /* no interrupts */
  outb(COM1_PORT + UART_LCR, 0x80);  /* DLAB */
  outb(COM1_PORT + UART_DLL, 0x01);  /* 115200 baud */
  outb(COM1_PORT + UART_DLM, 0x00);
  outb(COM1_PORT + UART_LCR, 0x03);  /* 8N1, DLAB off */
  outb(COM1_PORT + UART_FCR, 0x07);  /* enable and clear both FIFOs */
  outb(COM1_PORT + UART_MCR, 0x03);  /* DTR, RTS */
  fifo_room = 0;
}

static void wait_lsr(uint8_t bits) {
  for (unsigned i = 0; i < UART_POLL_LIMIT; i++) {
    if ((inb(COM1_PORT + UART_LSR) & bits) == bits) return;
  }
}

static void write_locked(const char* s, size_t n) {
  while (n > 0) {
    if (fifo_room == 0) {
      wait_lsr(LSR_THRE);
      fifo_room = UART_FIFO_DEPTH;
    }
    size_t chunk = n < fifo_room ? n : fifo_room;
    for (size_t i = 0; i < chunk; i++) outb(COM1_PORT + UART_THR, (uint8_t)s[i]);
    fifo_room -= (unsigned)chunk;
    s += chunk;
    n -= chunk;
  }
}

void console_write(const char* s, size_t n) {
  lock_console();
  write_locked(s, n);
  unlock_console();
}

/* Waits until the transmitter is idle, so nothing is lost when the VM ends. */
void console_flush(void) {
  lock_console();
  wait_lsr(LSR_THRE | LSR_TEMT);
  fifo_room = UART_FIFO_DEPTH;
  unlock_console();
}

/* ---- formatting ---- */
struct out {
  char* buf;
  size_t size, len;
};

static void put(struct out* o, char c) {
  if (o->len + 1 < o->size) o->buf[o->len] = c;
  o->len++;
}

struct spec {
  bool left, zero, alt;
  unsigned width;
};

static void put_padded(struct out* o, const struct spec* sp, const char* prefix, const char* body, size_t n) {
  size_t total = strlen(prefix) + n;
  size_t pad = sp->width > total ? sp->width - total : 0;
  if (!sp->left && !sp->zero) for (; pad > 0; pad--) put(o, ' ');
  for (; *prefix != '\0'; prefix++) put(o, *prefix);
  if (!sp->left && sp->zero) for (; pad > 0; pad--) put(o, '0');
  for (size_t i = 0; i < n; i++) put(o, body[i]);
  for (; pad > 0; pad--) put(o, ' ');
}

static void put_number(struct out* o, const struct spec* sp, uint64_t value, bool negative, unsigned base,
                       bool upper) {
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  char tmp[24];
  size_t n = 0;
  do {
    tmp[sizeof tmp - 1 - n++] = digits[value % base];
    value /= base;
  } while (value != 0);
  const char* prefix = negative ? "-" : (sp->alt && base == 16) ? "0x" : "";
  put_padded(o, sp, prefix, tmp + sizeof tmp - n, n);
}

/* Length modifier: 0 int, 1 long, 2 long long, 3 size_t. */
static uint64_t take_unsigned(va_list* ap, int length) {
  switch (length) {
    case 0: return va_arg(*ap, unsigned);
    case 1: return va_arg(*ap, unsigned long);
    case 2: return va_arg(*ap, unsigned long long);
    default: return va_arg(*ap, size_t);
  }
}
static int64_t take_signed(va_list* ap, int length) {
  switch (length) {
    case 0: return va_arg(*ap, int);
    case 1: return va_arg(*ap, long);
    case 2: return va_arg(*ap, long long);
    default: return (int64_t)va_arg(*ap, size_t);
  }
}

static const char* format_one(struct out* o, const char* f, va_list* ap) {
  struct spec sp = {false, false, false, 0};
  for (;; f++) {
    if (*f == '-') sp.left = true;
    else if (*f == '0') sp.zero = true;
    else if (*f == '#') sp.alt = true;
    else break;
  }
  while (*f >= '0' && *f <= '9') sp.width = sp.width * 10 + (unsigned)(*f++ - '0');
  int length = 0;
  if (*f == 'z') { length = 3; f++; }
  while (*f == 'l' && length < 2) { length++; f++; }
  switch (*f) {
    case 'd': case 'i': {
      int64_t v = take_signed(ap, length);
      put_number(o, &sp, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, v < 0, 10, false);
      break;
    }
    case 'u': put_number(o, &sp, take_unsigned(ap, length), false, 10, false); break;
    case 'x': put_number(o, &sp, take_unsigned(ap, length), false, 16, false); break;
    case 'X': put_number(o, &sp, take_unsigned(ap, length), false, 16, true); break;
    case 'p': sp.alt = true; put_number(o, &sp, (uintptr_t)va_arg(*ap, void*), false, 16, false); break;
    case 'c': { char c = (char)va_arg(*ap, int); put_padded(o, &sp, "", &c, 1); break; }
    case 's': {
      const char* s = va_arg(*ap, const char*);
      if (s == NULL) s = "(null)";
      put_padded(o, &sp, "", s, strlen(s));
      break;
    }
    case '%': put(o, '%'); break;
    case '\0': return f;
    default: put(o, '%'); put(o, *f); break;
  }
  return f + 1;
}

int vsnprintf(char* buf, size_t size, const char* fmt, va_list ap) {
  struct out o = {buf, size, 0};
  va_list copy;
  va_copy(copy, ap);
  while (*fmt != '\0') {
    if (*fmt != '%') {
      put(&o, *fmt++);
      continue;
    }
    fmt = format_one(&o, fmt + 1, &copy);
  }
  va_end(copy);
  if (size > 0) buf[o.len < size ? o.len : size - 1] = '\0';
  return (int)o.len;
}

int snprintf(char* buf, size_t size, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, size, fmt, ap);
  va_end(ap);
  return n;
}

/* One call, one locked write: lines from different CPUs never interleave. */
int printf(const char* fmt, ...) {
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
  console_write(line, len);
  return n;
}
