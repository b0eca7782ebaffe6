#include "sim/faulty_store.hpp"

namespace shoal::sim {

namespace {
Status dead_status() {
  return Status(Code::kUnavailable, "the process died inside a store call (simulated crash)");
}
}  // namespace

// Read transactions: a crash may strike any of their calls.
class FaultyStore::Read final : public store::ReadTxn {
 public:
  Read(FaultyStore& owner, std::unique_ptr<store::ReadTxn> inner) noexcept
      : owner_(&owner), inner_(std::move(inner)) {}
  [[nodiscard]] Result<std::string> get(store::Table t, std::string_view k) override {
    if (owner_->strike("get")) return dead_status();
    return inner_->get(t, k);
  }
  [[nodiscard]] Result<std::string_view> get_view(store::Table t, std::string_view k) override {
    if (owner_->strike("get")) return dead_status();
    return inner_->get_view(t, k);
  }
  [[nodiscard]] Status scan(store::Table t, const store::Range& r, store::Visitor v) override {
    if (owner_->strike("scan")) return dead_status();
    return inner_->scan(t, r, v);
  }
  [[nodiscard]] Result<std::uint64_t> count(store::Table t) override {
    if (owner_->strike("count")) return dead_status();
    return inner_->count(t);
  }

 private:
  FaultyStore* owner_;  // not owned; outlives the transaction
  std::unique_ptr<store::ReadTxn> inner_;
};

class FaultyStore::Write final : public store::WriteTxn {
 public:
  Write(FaultyStore& owner, std::unique_ptr<store::WriteTxn> inner) noexcept
      : owner_(&owner), inner_(std::move(inner)) {}
  [[nodiscard]] Result<std::string> get(store::Table t, std::string_view k) override {
    if (owner_->strike("get")) return dead_status();
    return inner_->get(t, k);
  }
  [[nodiscard]] Result<std::string_view> get_view(store::Table t, std::string_view k) override {
    if (owner_->strike("get")) return dead_status();
    return inner_->get_view(t, k);
  }
  [[nodiscard]] Status scan(store::Table t, const store::Range& r, store::Visitor v) override {
    if (owner_->strike("scan")) return dead_status();
    return inner_->scan(t, r, v);
  }
  [[nodiscard]] Result<std::uint64_t> count(store::Table t) override {
    if (owner_->strike("count")) return dead_status();
    return inner_->count(t);
  }
  [[nodiscard]] Status put(store::Table t, std::string_view k, std::string_view v) override {
    if (owner_->strike("put")) return dead_status();
    SHOAL_RETURN_IF_ERROR(remember(t, k));
    std::string value = owner_->patterns_.empty() ? std::string(v) : owner_->corrupt(v);
    SHOAL_RETURN_IF_ERROR(inner_->put(t, k, value));
    ops_.push_back(Op{t, std::string(k), std::move(value), true});
    return ok_status();
  }
  [[nodiscard]] Status del(store::Table t, std::string_view k) override {
    if (owner_->strike("del")) return dead_status();
    SHOAL_RETURN_IF_ERROR(remember(t, k));
    SHOAL_RETURN_IF_ERROR(inner_->del(t, k));
    ops_.push_back(Op{t, std::string(k), {}, false});
    return ok_status();
  }
  [[nodiscard]] Status commit() override {
    if (owner_->crashed_) {
      inner_->abort();
      return dead_status();
    }
    if (!owner_->strike_silently()) {
      SHOAL_RETURN_IF_ERROR(inner_->commit());
      if (owner_->mode_ == StoreMode::kNoSync) {
        owner_->unsynced_.push_back(std::move(undo_));
        while (owner_->unsynced_.size() > kUnsyncedCommits) owner_->unsynced_.pop_front();
      }
      return ok_status();
    }
    // The process dies while this commit is being written.
    FaultyStore& o = *owner_;
    if (o.mode_ == StoreMode::kTorn && ops_.size() >= 2) {
      // Dishonest: half of the transaction reaches the disk.
      inner_->abort();
      auto w = o.inner_->begin_write();
      if (w.ok()) {
        for (std::size_t i = 0; i < ops_.size() / 2; ++i) {
          const Op& op = ops_[i];
          (void)(op.is_put ? (*w)->put(op.table, op.key, op.value) : (*w)->del(op.table, op.key));
        }
        (void)(*w)->commit();
      }
      o.fate_ = CommitFate::kLanded;
      ++o.undone_commits_;
    } else if (o.crash_lands_ && inner_->commit().ok()) {
      o.fate_ = CommitFate::kLanded;
      if (o.mode_ == StoreMode::kNoSync) o.unsynced_.push_back(std::move(undo_));
    } else {
      inner_->abort();
      o.fate_ = CommitFate::kLost;
    }
    o.die("commit");
    return dead_status();
  }
  void abort() noexcept override { inner_->abort(); }

 private:
  struct Op {
    store::Table table;
    std::string key;
    std::string value;
    bool is_put;
  };

  // nosync: the value `k` had before this transaction first wrote it.
  Status remember(store::Table t, std::string_view k) {
    if (owner_->mode_ != StoreMode::kNoSync) return ok_status();
    for (const Undo& u : undo_) {
      if (u.table == t && u.key == k) return ok_status();
    }
    auto old = inner_->get(t, k);
    if (!old.ok() && old.status().code() != Code::kNotFound) return old.status();
    undo_.push_back(Undo{t, std::string(k), old.ok() ? std::optional<std::string>(*old) : std::nullopt});
    return ok_status();
  }

  FaultyStore* owner_;  // not owned; outlives the transaction
  std::unique_ptr<store::WriteTxn> inner_;
  std::vector<Op> ops_;
  std::vector<Undo> undo_;
};

bool FaultyStore::strike(const char* call) noexcept {
  if (crashed_) return true;
  if (observing_ || commits_only_ || crash_in_ == 0 || --crash_in_ != 0) return false;
  die(call);
  return true;
}

bool FaultyStore::strike_silently() noexcept {
  if (observing_ || crash_in_ == 0 || --crash_in_ != 0) return false;
  return true;
}

void FaultyStore::die(const char* call) noexcept {
  crashed_ = true;
  crash_in_ = 0;
  crashed_in_ = call;
  inner_->crash();
  undo_unsynced();
}

void FaultyStore::crash_now() noexcept {
  crash_in_ = 0;
  inner_->crash();
  undo_unsynced();
}

void FaultyStore::undo_unsynced() noexcept {
  if (unsynced_.empty()) return;
  auto w = inner_->begin_write();
  if (!w.ok()) return;
  for (auto c = unsynced_.rbegin(); c != unsynced_.rend(); ++c) {
    for (auto u = c->rbegin(); u != c->rend(); ++u) {
      (void)(u->old_value ? (*w)->put(u->table, u->key, *u->old_value) : (*w)->del(u->table, u->key));
    }
    ++undone_commits_;
  }
  (void)(*w)->commit();
  unsynced_.clear();
}

Result<std::unique_ptr<store::ReadTxn>> FaultyStore::begin_read() {
  if (strike("begin_read")) return dead_status();
  auto r = inner_->begin_read();
  if (!r.ok()) return r.status();
  return std::unique_ptr<store::ReadTxn>(std::make_unique<Read>(*this, std::move(r).value()));
}

Result<std::unique_ptr<store::WriteTxn>> FaultyStore::begin_write() {
  if (strike("begin_write")) return dead_status();
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
