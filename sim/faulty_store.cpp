#include "sim/faulty_store.hpp"

namespace shoal::sim {

class FaultyStore::Write final : public store::WriteTxn {
 public:
  Write(FaultyStore& owner, std::unique_ptr<store::WriteTxn> inner) noexcept
      : owner_(&owner), inner_(std::move(inner)) {}
  [[nodiscard]] Result<std::string> get(store::Table t, std::string_view k) override { return inner_->get(t, k); }
  [[nodiscard]] Status scan(store::Table t, const store::Range& r, store::Visitor v) override {
    return inner_->scan(t, r, v);
  }
  [[nodiscard]] Result<std::uint64_t> count(store::Table t) override { return inner_->count(t); }
  [[nodiscard]] Status put(store::Table t, std::string_view k, std::string_view v) override {
    if (owner_->patterns_.empty()) return inner_->put(t, k, v);
    return inner_->put(t, k, owner_->corrupt(v));
  }
  [[nodiscard]] Status del(store::Table t, std::string_view k) override { return inner_->del(t, k); }
  [[nodiscard]] Status commit() override { return inner_->commit(); }
  void abort() noexcept override { inner_->abort(); }

 private:
  FaultyStore* owner_;  // not owned; outlives the transaction
  std::unique_ptr<store::WriteTxn> inner_;
};

Result<std::unique_ptr<store::WriteTxn>> FaultyStore::begin_write() {
  auto w = inner_->begin_write();
  if (!w.ok()) return w.status();
  return std::unique_ptr<store::WriteTxn>(std::make_unique<Write>(*this, std::move(w).value()));
}

std::string FaultyStore::corrupt(std::string_view value) {
  std::string out(value);
  for (const std::string& p : patterns_) {
    if (p.empty()) continue;
    const std::size_t at = out.find(p);
    if (at == std::string::npos) continue;
    out[at] = static_cast<char>(static_cast<unsigned char>(out[at]) ^ 0x01u);
    ++corrupted_puts_;
  }
  return out;
}

}  // namespace shoal::sim
