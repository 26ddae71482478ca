#include "core/io/irq_router.hpp"

#include <molt/sdk/error.hpp>

namespace molt::core::io {

class IrqRouter::Line final : public sdk::IrqLine {
 public:
  Line(IrqRouter& router, unsigned gsi) : router_(router), gsi_(gsi) {}
  void set_level(bool asserted) override {
    if (asserted == level_) return;
    level_ = asserted;
    router_.change(gsi_, asserted ? 1 : -1);
  }
  void pulse() override { router_.pulse(gsi_); }
  unsigned gsi() const override { return gsi_; }

 private:
  IrqRouter& router_;
  unsigned gsi_;
  bool level_ = false;  // changed only under the owning device's lock
};

IrqRouter::IrqRouter(kvm::Vm& vm) : vm_(vm) {}
IrqRouter::~IrqRouter() = default;

sdk::IrqLine& IrqRouter::claim(unsigned gsi, const std::string& owner) {
  if (gsi >= kGsiCount) {
    throw sdk::Error(owner + ": IRQ " + std::to_string(gsi) + " does not exist; the IOAPIC has GSIs 0 to " +
                     std::to_string(kGsiCount - 1));
  }
  std::lock_guard lock(mutex_);
  lines_.push_back(std::make_unique<Line>(*this, gsi));
  return *lines_.back();
}

void IrqRouter::change(unsigned gsi, int delta) {
  std::lock_guard lock(mutex_);
  const int before = asserted_[gsi];
  asserted_[gsi] += delta;
  if ((before == 0) != (asserted_[gsi] == 0)) vm_.set_irq_line(gsi, asserted_[gsi] != 0);
}

void IrqRouter::pulse(unsigned gsi) {
  std::lock_guard lock(mutex_);
  if (asserted_[gsi] != 0) return;  // a line held high by another device shows no edge
  vm_.set_irq_line(gsi, true);
  vm_.set_irq_line(gsi, false);
}

}  // namespace molt::core::io
