#include "core/memory/guest_ram.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <molt/sdk/error.hpp>
#include <molt/sdk/handover.hpp>

namespace molt::core::memory {

namespace {
constexpr std::uint64_t kPage = 4096;

std::string mib(std::uint64_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

std::string errno_text() {
  return std::string(std::strerror(errno));
}

// Opens (creating with mode 0600 unless the contents must already be there)
// and locks a RAM file; the lock belongs to the open file description.
kvm::Fd open_ram_file(const RamFile& file, std::uint64_t size) {
  const std::string where = "memory.path " + file.path.string();
  const int flags = O_RDWR | O_CLOEXEC | (file.keep_contents ? 0 : O_CREAT);
  kvm::Fd fd(::open(file.path.c_str(), flags, 0600));
  if (!fd && errno == ENOENT && file.keep_contents)
    throw sdk::Error(where + ": the RAM file does not exist, so there are no pages to keep");
  if (!fd) throw sdk::Error(where + ": cannot open the RAM file: " + errno_text());
  struct stat st {};
  if (::fstat(fd.get(), &st) < 0) throw sdk::Error(where + ": cannot stat the RAM file: " + errno_text());
  if (!S_ISREG(st.st_mode))
    throw sdk::Error(where + ": not a regular file; give a file path, for example on /dev/shm");
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) < 0) {
    if (errno == EWOULDBLOCK)
      throw sdk::Error(where +
                       ": in use by another process (it holds the lock); stop the molt that runs this guest, "
                       "or give this machine a RAM file of its own");
    throw sdk::Error(where + ": cannot lock the RAM file: " + errno_text());
  }
  if (file.keep_contents) {
    if (static_cast<std::uint64_t>(st.st_size) != size)
      throw sdk::Error(where + ": the RAM file holds " + std::to_string(st.st_size) +
                       " bytes, the machine's RAM is " + std::to_string(size) + " (" + mib(size) +
                       "); its pages do not fit this machine");
    return fd;
  }
  // Fresh RAM: drop every page the file held, then size it: all holes.
  if (::ftruncate(fd.get(), 0) < 0 || ::ftruncate(fd.get(), static_cast<off_t>(size)) < 0)
    throw sdk::Error(where + ": cannot size the RAM file to " + mib(size) + ": " + errno_text());
  return fd;
}

}  // namespace

RamBlock::RamBlock(std::string name, std::uint64_t size, RamBacking backing)
    : name_(std::move(name)), size_(size), backing_(backing) {
  if (backing == RamBacking::File)
    throw sdk::Error("RAM block " + name_ + ": a file-backed block needs its RamFile");
  int flags = MAP_NORESERVE;
  if (backing == RamBacking::Memfd) {
    fd_ = kvm::Fd(::memfd_create(("molt:" + name_).c_str(), MFD_CLOEXEC));
    if (!fd_) throw sdk::Error("RAM block " + name_ + ": memfd_create failed: " + std::strerror(errno));
    if (::ftruncate(fd_.get(), static_cast<off_t>(size)) < 0)
      throw sdk::Error("RAM block " + name_ + ": cannot size the memfd to " + mib(size) + ": " + std::strerror(errno));
    flags |= MAP_SHARED;
  } else {
    flags |= MAP_PRIVATE | MAP_ANONYMOUS;
  }
  void* host = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, flags, fd_ ? fd_.get() : -1, 0);
  if (host == MAP_FAILED) {
    throw sdk::Error("RAM block " + name_ + ": cannot map " + mib(size) + ": " + std::strerror(errno) +
                     "; ask for less memory");
  }
  host_ = static_cast<std::uint8_t*>(host);
}

RamBlock::RamBlock(std::string name, std::uint64_t size, const RamFile& file)
    : name_(std::move(name)),
      size_(size),
      backing_(RamBacking::File),
      fd_(open_ram_file(file, size)),
      path_(file.path),
      contents_kept_(file.keep_contents) {
  map_shared("the RAM file " + path_.string());
}

RamBlock::RamBlock(std::string name, std::uint64_t size, kvm::Fd memfd,
                   const std::optional<std::filesystem::path>& file_path)
    : name_(std::move(name)),
      size_(size),
      backing_(file_path ? RamBacking::File : RamBacking::Memfd),
      fd_(std::move(memfd)),
      path_(file_path.value_or(std::filesystem::path())),
      contents_kept_(true) {
  struct stat st {};
  if (::fstat(fd_.get(), &st) < 0 || static_cast<std::uint64_t>(st.st_size) != size) {
    throw sdk::Error("RAM block " + name_ + ": the handed-over memfd holds " + std::to_string(st.st_size) +
                     " bytes, the machine wants " + std::to_string(size));
  }
  // The machine says its RAM is this file: the source must have handed over
  // that very file, or two processes would think they own different RAM.
  if (file_path && !sdk::names_open_file(fd_.get(), file_path->string())) {
    throw sdk::Error("RAM block " + name_ + ": the handed-over RAM is not memory.path " +
                     file_path->string() +
                     "; give the new molt the same memory backend and path as the source");
  }
  map_shared("the handed-over memfd");
}

void RamBlock::map_shared(const std::string& what) {
  void* host = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd_.get(), 0);
  if (host == MAP_FAILED)
    throw sdk::Error("RAM block " + name_ + ": cannot map " + what + ": " + std::strerror(errno));
  host_ = static_cast<std::uint8_t*>(host);
}

void RamBlock::sync() const {
  if (backing_ != RamBacking::File) return;
  if (::fdatasync(fd_.get()) < 0)
    throw sdk::Error("RAM block " + name_ + ": cannot write its pages to " + path_.string() + ": " +
                     std::strerror(errno));
}

void RamBlock::discard() {
  if (fd_) {
    if (::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(size_)) == 0) return;
  }
  if (::madvise(host_, size_, fd_ ? MADV_REMOVE : MADV_DONTNEED) < 0)
    throw sdk::Error("RAM block " + name_ + ": cannot discard its pages: " + std::strerror(errno));
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> RamBlock::data_extents() const {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  if (!fd_) {
    out.emplace_back(0, size_);
    return out;
  }
  off_t pos = 0;
  const auto end = static_cast<off_t>(size_);
  while (pos < end) {
    const off_t data = ::lseek(fd_.get(), pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // no data after pos
      out.emplace_back(static_cast<std::uint64_t>(pos), size_);  // can't tell: assume data
      break;
    }
    off_t hole = ::lseek(fd_.get(), data, SEEK_HOLE);
    if (hole < 0 || hole > end) hole = end;
    out.emplace_back(static_cast<std::uint64_t>(data) & ~(kPage - 1), static_cast<std::uint64_t>(hole));
    pos = hole;
  }
  return out;
}

RamBlock::~RamBlock() {
  if (host_) ::munmap(host_, size_);
}

void DeviceDirtyLog::mark(std::uint64_t first_page, std::uint64_t count) {
  for (std::uint64_t p = first_page; p < first_page + count && p / 64 < bits_.size(); ++p) {
    bits_[p / 64].fetch_or(1ull << (p % 64), std::memory_order_relaxed);
  }
}

bool DeviceDirtyLog::test(std::uint64_t page) const {
  return page / 64 < bits_.size() && (bits_[page / 64].load(std::memory_order_relaxed) >> (page % 64)) & 1;
}

std::vector<std::uint64_t> DeviceDirtyLog::take() {
  std::vector<std::uint64_t> out(bits_.size());
  for (std::size_t i = 0; i < bits_.size(); ++i) out[i] = bits_[i].exchange(0, std::memory_order_relaxed);
  return out;
}

GuestRam::GuestRam(std::uint64_t size, RamBacking backing) {
  if (size == 0 || size % kPage != 0) throw sdk::Error("guest RAM must be a non-zero multiple of 4 KiB");
  lay_out(std::make_unique<RamBlock>("pc.ram", size, backing));
}

GuestRam::GuestRam(std::uint64_t size, const RamFile& file) {
  if (size == 0 || size % kPage != 0) throw sdk::Error("guest RAM must be a non-zero multiple of 4 KiB");
  lay_out(std::make_unique<RamBlock>("pc.ram", size, file));
}

GuestRam::GuestRam(std::uint64_t size, kvm::Fd memfd, const std::optional<std::filesystem::path>& file_path) {
  if (size == 0 || size % kPage != 0) throw sdk::Error("guest RAM must be a non-zero multiple of 4 KiB");
  lay_out(std::make_unique<RamBlock>("pc.ram", size, std::move(memfd), file_path));
}

void GuestRam::lay_out(std::unique_ptr<RamBlock> owned) {
  const std::uint64_t size = owned->size();
  blocks_.push_back(std::move(owned));
  RamBlock* block = blocks_.back().get();
  const std::uint64_t low = std::min(size, kHoleStart);
  regions_.push_back(RamRegion{0, low, block, 0});
  if (size > low) regions_.push_back(RamRegion{kHighStart, size - low, block, low});
  for (const RamRegion& r : regions_) dirty_.push_back(std::make_unique<DeviceDirtyLog>(r.size / kPage));
}

std::uint64_t GuestRam::total_size() const {
  std::uint64_t total = 0;
  for (const auto& b : blocks_) total += b->size();
  return total;
}

const RamRegion* GuestRam::find(std::uint64_t gpa, std::uint64_t len, std::size_t* index) const {
  for (std::size_t i = 0; i < regions_.size(); ++i) {
    const RamRegion& r = regions_[i];
    if (gpa >= r.gpa && len <= r.size && gpa - r.gpa <= r.size - len) {
      if (index) *index = i;
      return &r;
    }
  }
  return nullptr;
}

bool GuestRam::read(std::uint64_t gpa, std::span<std::uint8_t> out) {
  const RamRegion* r = find(gpa, out.size());
  if (!r) return false;
  std::memcpy(out.data(), r->host() + (gpa - r->gpa), out.size());
  return true;
}

bool GuestRam::write(std::uint64_t gpa, std::span<const std::uint8_t> in) {
  std::size_t index = 0;
  const RamRegion* r = find(gpa, in.size(), &index);
  if (!r) return false;
  std::memcpy(r->host() + (gpa - r->gpa), in.data(), in.size());
  if (!in.empty()) dirty_[index]->mark((gpa - r->gpa) / kPage, (gpa - r->gpa + in.size() - 1) / kPage - (gpa - r->gpa) / kPage + 1);
  return true;
}

std::span<std::uint8_t> GuestRam::map(std::uint64_t gpa, std::uint64_t len) {
  const RamRegion* r = find(gpa, len);
  if (!r) return {};
  return {r->host() + (gpa - r->gpa), static_cast<std::size_t>(len)};
}

void GuestRam::mark_dirty(std::uint64_t gpa, std::uint64_t len) {
  std::size_t index = 0;
  const RamRegion* r = find(gpa, len, &index);
  if (!r || len == 0) return;
  const std::uint64_t first = (gpa - r->gpa) / kPage;
  dirty_[index]->mark(first, (gpa - r->gpa + len - 1) / kPage - first + 1);
}

}  // namespace molt::core::memory
