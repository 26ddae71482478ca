/* /init of molt's tiny initramfs: proves the kernel found the initrd molt
 * loaded, shows the command line and the memory map the kernel kept, then
 * powers the machine off so a test sees the VM end. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <unistd.h>

static void show(const char* label, const char* path) {
  char buf[4096];
  int fd = open(path, O_RDONLY);
  if (fd < 0) {
    printf("molt-init: %s: cannot open %s\n", label, path);
    return;
  }
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  buf[n > 0 ? n : 0] = '\0';
  printf("molt-init: %s: %s", label, buf);
  if (n <= 0 || buf[n - 1] != '\n') printf("\n");
}

int main(void) {
  printf("molt-init: initramfs /init running as pid %d\n", (int)getpid());
  if (mount("proc", "/proc", "proc", 0, NULL) != 0) printf("molt-init: mounting /proc failed\n");
  show("cmdline", "/proc/cmdline");
  if (mount("sysfs", "/sys", "sysfs", 0, NULL) == 0)
    show("cpus", "/sys/devices/system/cpu/online");
  else
    printf("molt-init: mounting /sys failed\n");
  printf("molt-init: powering off\n");
  fflush(stdout);
  sync();
  reboot(RB_POWER_OFF);
  return 1;
}
