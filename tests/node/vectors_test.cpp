// Proves that float vectors live once, in the store's vectors table (docs/node-format.md,
// "Vectors apart from their records"; issue 16): a data directory written before it (schema 1,
// each record holding its winner's vector inline, made here by rewriting a real directory into
// version 1's layout with raw LMDB: six tables, inline vectors, no vectors key) is migrated at its
// next open, and then answers get, search and its CRDT state byte for byte as before (the
// payloads that sync and repair send are rebuilt identical); after it, every record's winner
// payload is elided and the vectors table holds exactly the live records' vectors, through
// upserts, updates and deletes; a reopen loads the snapshot, which holds no floats; and an elided
// payload is refused by decode_payload, so a peer cannot send one. The readers that re-rank from
// the vectors table share a cache of pointers per LMDB snapshot (VectorPointerCache): a reader
// never sees a vector older than the last write committed before it began, also while searches
// and writes interleave (run under TSan too). Data: seeded (seed printed).
#include <catch2/catch.hpp>

#include <lmdb.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <thread>

#include "common/random.hpp"
#include "crdt/codec.hpp"
#include "node/core/delta_buffer.hpp"
#include "node/core/vector_store.hpp"
#include "node/runtime/data_dir.hpp"
#include "node/runtime/file_snapshot_store.hpp"
#include "node/store/lmdb_store.hpp"

using namespace shoal;
using namespace shoal::node;

namespace {

constexpr std::uint32_t kDim = 12;

std::string fresh_dir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("shoal-vectors-" + std::to_string(::getpid()) + "-" + name);
  std::filesystem::remove_all(p);
  return p.string();
}

std::unique_ptr<OpenDataDir> open_dir(const std::string& path) {
  DataDirOptions o;
  o.node.build_threads = 1;
  auto d = open_data_dir(path, std::move(o));
  INFO(path << ": " << d.status().to_string());
  REQUIRE(d.ok());
  return std::move(d).value();
}

std::vector<float> random_vector(Rng& rng) {
  std::vector<float> v(kDim);
  for (float& x : v) x = rng.uniform_float(-1.0f, 1.0f);
  return v;
}

// A vector of kDim components all equal to `x`, as the bytes a vector slab's slot holds.
std::string filled_vector_bytes(float x) {
  std::vector<float> v(kDim, x);
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

struct Tables {
  std::map<store::Table, std::vector<store::KeyValue>> rows;
};

// Opens the store at `store_path` as this build does (upgrading an older schema's version only).
Result<std::unique_ptr<store::LmdbStore>> open_store(const std::string& store_path) {
  store::LmdbStoreOptions o;
  o.path = store_path;
  auto st = store::LmdbStore::open(o);
  REQUIRE(st.ok());
  return st;
}

Tables read_all(const std::string& store_path) {
  auto st = open_store(store_path);
  auto txn = (*st)->begin_read();
  REQUIRE(txn.ok());
  Tables t;
  for (store::Table table : store::kAllTables) {
    auto rows = (*txn)->collect(table, store::Range::all());
    REQUIRE(rows.ok());
    t.rows[table] = std::move(rows).value();
  }
  return t;
}

// Every stored vector of collection 1, by vectors-table key (u32be cid, u64be label), read from
// the vector slabs of the store at `store_path`.
std::map<std::string, std::string> stored_vectors(const std::string& store_path) {
  auto st = open_store(store_path);
  auto txn = (*st)->begin_read();
  REQUIRE(txn.ok());
  std::map<std::string, std::string> out;
  REQUIRE(format::scan_vectors(**txn, 1, kDim, [&](std::uint64_t label, std::string_view v) {
    out[format::vector_key(1, label)] = std::string(v);
    return true;
  }).ok());
  return out;
}

// Rewrites the store at `store_path` with raw LMDB into an older build's layout: only the tables
// that version had (those before `first_absent`), the schema version set to `version`, the meta
// keys in `drop` removed, the vectors table holding `vectors`, and each record passed through
// `record` (which may rewrite its value).
void rewrite_store(const std::string& store_path, std::uint32_t version, store::Table first_absent,
                   const std::vector<std::string_view>& drop, const std::map<std::string, std::string>& vectors,
                   const std::function<void(const std::string& key, std::string& value)>& record) {
  Tables t = read_all(store_path);
  std::filesystem::remove_all(store_path);
  std::filesystem::create_directories(store_path);
  MDB_env* env = nullptr;
  REQUIRE(mdb_env_create(&env) == 0);
  REQUIRE(mdb_env_set_maxdbs(env, 10) == 0);
  REQUIRE(mdb_env_set_mapsize(env, std::size_t{64} << 20) == 0);
  REQUIRE(mdb_env_open(env, store_path.c_str(), MDB_NOTLS, 0600) == 0);
  MDB_txn* txn = nullptr;
  REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
  std::string schema = store::encode_u64_be(version).substr(4);
  for (store::Table table : store::kAllTables) {
    if (static_cast<int>(table) >= static_cast<int>(first_absent)) continue;
    MDB_dbi dbi = 0;
    REQUIRE(mdb_dbi_open(txn, std::string(store::table_name(table)).c_str(), MDB_CREATE, &dbi) == 0);
    std::vector<store::KeyValue> rows = t.rows[table];
    if (table == store::Table::kVectors) {
      rows.clear();
      for (const auto& [k, v] : vectors) rows.push_back(store::KeyValue{k, v});
    }
    for (const auto& kv : rows) {
      std::string key = kv.key, value = kv.value;
      if (table == store::Table::kMeta && std::find(drop.begin(), drop.end(), key) != drop.end()) continue;
      if (table == store::Table::kMeta && key == store::kSchemaVersionKey) value = schema;
      if (table == store::Table::kRecords) record(key, value);
      MDB_val k{key.size(), key.data()};
      MDB_val v{value.size(), value.data()};
      REQUIRE(mdb_put(txn, dbi, &k, &v, 0) == 0);
    }
  }
  REQUIRE(mdb_txn_commit(txn) == 0);
  mdb_env_close(env);
}

// Schema 1's layout: six tables, each record with its winner's vector inline (as builds before
// the vectors table wrote it), no vectors key, version 1.
void rewrite_as_version_1(const std::string& store_path) {
  const std::map<std::string, std::string> vectors = stored_vectors(store_path);
  rewrite_store(store_path, 1, store::Table::kVectors,
                {format::kVectorsApartKey, format::kIndexDirtyKey, format::kVectorSlabsKey}, {},
                [&](const std::string& key, std::string& value) {
                  // Put the vector back into the winner's payload, as version 1 stored it.
                  auto rec = format::decode_record(value, key);
                  REQUIRE(rec.ok());
                  const crdt::Entry* w = crdt::winner(rec->entries);
                  REQUIRE(w != nullptr);
                  REQUIRE(format::payload_elided(w->payload));
                  std::uint32_t cid = 0;
                  for (int i = 0; i < 4; ++i) cid = (cid << 8) | static_cast<unsigned char>(key[static_cast<std::size_t>(i)]);
                  const std::string& vec = vectors.at(format::vector_key(cid, rec->label));
                  crdt::Entry& e = rec->entries[static_cast<std::size_t>(w - rec->entries.data())];
                  crdt::Bytes p(e.payload.begin(), e.payload.begin() + 1);
                  const std::uint32_t dim = static_cast<std::uint32_t>(vec.size() / 4);
                  p.resize(5);
                  std::memcpy(p.data() + 1, &dim, 4);
                  p.insert(p.end(), vec.begin(), vec.end());
                  p.insert(p.end(), e.payload.begin() + 5, e.payload.end());
                  e.payload = std::move(p);
                  value = format::encode_record(rec->label, rec->entries);
                });
}

// Schema 4's layout: eight tables, each vector in the vectors table under its own label, no slabs
// key, version 4.
void rewrite_as_version_4(const std::string& store_path) {
  rewrite_store(store_path, 4, store::Table::kVectorSlabs, {format::kVectorSlabsKey}, stored_vectors(store_path),
                [](const std::string&, std::string&) {});
}

// Schema 6's layout: the same tables, every vector slab at its full length (n slots, as builds
// before D75 stored each slab), version 6. Returns how many slabs were shorter before.
std::size_t rewrite_as_version_6(const std::string& store_path) {
  MDB_env* env = nullptr;
  REQUIRE(mdb_env_create(&env) == 0);
  REQUIRE(mdb_env_set_maxdbs(env, 16) == 0);
  REQUIRE(mdb_env_open(env, store_path.c_str(), MDB_NOTLS, 0600) == 0);
  MDB_txn* txn = nullptr;
  REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
  MDB_dbi slabs = 0, meta = 0;
  REQUIRE(mdb_dbi_open(txn, "vector_slabs", 0, &slabs) == 0);
  REQUIRE(mdb_dbi_open(txn, "meta", 0, &meta) == 0);
  std::vector<std::pair<std::string, std::string>> padded;
  MDB_cursor* cur = nullptr;
  REQUIRE(mdb_cursor_open(txn, slabs, &cur) == 0);
  MDB_val k, v;
  for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    const std::string value(static_cast<const char*>(v.mv_data), v.mv_size);
    std::uint32_t n = 0, dim = 0;
    std::memcpy(&n, value.data() + value.size() - 8, 4);
    std::memcpy(&dim, value.data() + value.size() - 4, 4);
    const std::size_t tail = ((n + 7) / 8 + 3) / 4 * 4 + 8;
    const std::size_t full = std::size_t{n} * dim * 4 + tail;
    if (value.size() == full) continue;
    std::string f = value.substr(0, value.size() - tail);
    f.resize(full - tail, '\0');
    f += value.substr(value.size() - tail);
    padded.emplace_back(std::string(static_cast<const char*>(k.mv_data), k.mv_size), std::move(f));
  }
  mdb_cursor_close(cur);
  for (auto& [key, value] : padded) {
    MDB_val pk{key.size(), key.data()}, pv{value.size(), value.data()};
    REQUIRE(mdb_put(txn, slabs, &pk, &pv, 0) == 0);
  }
  std::string version("\0\0\0\x06", 4);
  MDB_val vk{store::kSchemaVersionKey.size(), const_cast<char*>(store::kSchemaVersionKey.data())};
  MDB_val vv{version.size(), version.data()};
  REQUIRE(mdb_put(txn, meta, &vk, &vv, 0) == 0);
  REQUIRE(mdb_txn_commit(txn) == 0);
  mdb_env_close(env);
  return padded.size();
}

// Every record's winner payload is elided and the vector slabs hold one vector per live record
// (the per-label vectors table is empty).
void check_vectors_apart(const std::string& store_path, std::size_t live) {
  Tables t = read_all(store_path);
  CHECK(stored_vectors(store_path).size() == live);
  CHECK(t.rows[store::Table::kVectors].empty());
  CHECK(t.rows[store::Table::kRecords].size() == live);
  for (const auto& kv : t.rows[store::Table::kRecords]) {
    auto rec = format::decode_record(kv.value, kv.key);
    REQUIRE(rec.ok());
    CHECK(format::payload_elided(crdt::winner(rec->entries)->payload));
  }
  bool apart = false, slabs = false;
  for (const auto& kv : t.rows[store::Table::kMeta]) {
    apart |= kv.key == format::kVectorsApartKey;
    slabs |= kv.key == format::kVectorSlabsKey;
  }
  CHECK(apart);
  CHECK(slabs);
}

struct Answers {
  std::map<std::string, std::vector<float>> vectors;
  std::vector<std::vector<std::pair<std::string, float>>> hits;
  crdt::ORMap state;
};

Answers answers(OpenDataDir& d, const std::vector<std::string>& ids, const std::vector<std::vector<float>>& queries) {
  Answers a;
  for (const auto& id : ids) {
    auto g = d.node().get("c", id);
    REQUIRE(g.ok());
    a.vectors[id] = g->siblings.at(0).value.vector;
  }
  for (const auto& q : queries) {
    SearchOptions o;
    o.k = 10;
    auto hits = d.node().search("c", q, o);
    REQUIRE(hits.ok());
    std::vector<std::pair<std::string, float>> h;
    for (const auto& hit : *hits) h.emplace_back(hit.id, hit.distance);
    a.hits.push_back(std::move(h));
  }
  auto st = d.node().crdt_state_for_testing("c");
  REQUIRE(st.ok());
  a.state = std::move(st).value();
  return a;
}

}  // namespace

namespace {

// A data directory written by this build (400 records, one update, one delete, so labels are not
// just 1..n) and what it answered before a test rewrote it into an older layout.
struct Written {
  std::string path;
  std::vector<std::string> ids;
  std::vector<std::vector<float>> queries;
  Answers before;
};

Written write_directory(const std::string& name, Rng& rng) {
  Written w;
  w.path = fresh_dir(name);
  for (int i = 0; i < 8; ++i) w.queries.push_back(random_vector(rng));
  auto d = open_dir(w.path);
  CollectionSpec spec;
  spec.name = "c";
  spec.dimension = kDim;
  REQUIRE(d->node().create_collection(spec).ok());
  std::vector<RecordInput> batch;
  for (int i = 0; i < 400; ++i) {
    w.ids.push_back("r" + std::to_string(i));
    RecordValue v;
    v.vector = random_vector(rng);
    v.model = "m";
    v.metadata.fields.emplace_back("i", std::int64_t{i});
    batch.push_back(RecordInput{w.ids.back(), std::move(v)});
  }
  REQUIRE(d->node().upsert_batch("c", std::move(batch)).ok());
  RecordValue upd;
  upd.vector = random_vector(rng);
  REQUIRE(d->node().upsert("c", "r7", upd).ok());
  REQUIRE(d->node().remove("c", "r9").ok());
  w.ids.erase(std::find(w.ids.begin(), w.ids.end(), "r9"));
  w.before = answers(*d, w.ids, w.queries);
  return w;
}

// Opens the rewritten directory (migrating it), checks that it answers as before and is in
// today's layout, then opens it once more (nothing left to migrate; the snapshot is loaded).
void check_migrated(const Written& w, const std::string& index_source) {
  {
    auto d = open_dir(w.path);
    CHECK(d->node().open_report().index_source.at("c") == index_source);
    const Answers after = answers(*d, w.ids, w.queries);
    CHECK(after.vectors == w.before.vectors);
    CHECK(after.hits == w.before.hits);
    CHECK(after.state == w.before.state);  // payloads rebuilt byte for byte
  }
  check_vectors_apart(w.path + "/store", w.ids.size());
  {
    auto d = open_dir(w.path);
    CHECK(d->node().open_report().index_source.at("c") == "snapshot");
    const Answers again = answers(*d, w.ids, w.queries);
    CHECK(again.hits == w.before.hits);
    CHECK(again.vectors == w.before.vectors);
  }
}

}  // namespace

TEST_CASE("a data directory from before the vectors table is migrated at open and answers as before",
          "[node][vectors][data_dir]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  const Written w = write_directory("migrate", rng);
  check_vectors_apart(w.path + "/store", w.ids.size());
  rewrite_as_version_1(w.path + "/store");
  std::filesystem::remove_all(w.path + "/snapshots");  // version 1's snapshots held floats: rebuilt
  {
    Tables old = read_all(w.path + "/store");  // opening for reading upgrades the schema only
    CHECK(old.rows[store::Table::kVectors].empty());
    CHECK(old.rows[store::Table::kVectorSlabs].empty());
    for (const auto& kv : old.rows[store::Table::kRecords]) {
      auto rec = format::decode_record(kv.value, kv.key);
      REQUIRE(rec.ok());
      CHECK(!format::payload_elided(crdt::winner(rec->entries)->payload));
    }
  }
  check_migrated(w, "rebuilt");
  std::filesystem::remove_all(w.path);
}

TEST_CASE("a data directory with one vectors-table entry per label (schema 4) is packed into slabs at open, in "
          "resumable batches, and answers as before",
          "[node][vectors][data_dir][slabs]") {
  // Proves migrate_vector_slabs (schema version 5, D52): a directory written by this build is
  // rewritten with raw LMDB into version 4's layout (the vector_slabs table absent, every vector
  // under its own label); after the migration the directory answers get,
  // search and its CRDT state as before, loading its snapshot (labels did not change). The
  // migration resumes from the state a crash after its first batch leaves (7 moved, the rest in
  // the vectors table) and runs in batches of 7 here.
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  const Written w = write_directory("slabs", rng);
  rewrite_as_version_4(w.path + "/store");
  const std::size_t n = w.ids.size();
  {
    Tables old = read_all(w.path + "/store");  // opening upgrades the schema and creates the table only
    CHECK(old.rows[store::Table::kVectors].size() == n);
    CHECK(old.rows[store::Table::kVectorSlabs].empty());
  }
  {
    // One batch of a migration that dies before the next: a store of its own that moves 7 and
    // then fails its next write transaction.
    auto st = open_store(w.path + "/store");
    auto txn = (*st)->begin_write();
    REQUIRE(txn.ok());
    auto first = (*txn)->collect(store::Table::kVectors, store::Range::all().limited(7));
    REQUIRE(first.ok());
    for (const auto& kv : *first) {
      REQUIRE(format::put_vector(**txn, 1, store::decode_u64_be(std::string_view(kv.key).substr(4)).value(), kv.value)
                  .ok());
      REQUIRE((*txn)->del(store::Table::kVectors, kv.key).ok());
    }
    REQUIRE((*txn)->commit().ok());
  }
  {
    Tables mid = read_all(w.path + "/store");
    CHECK(mid.rows[store::Table::kVectors].size() == n - 7);
    CHECK(stored_vectors(w.path + "/store").size() == 7);
  }
  {
    // The rest, resumed in batches of 7 (Node::open would do it in batches of 4,096).
    auto st = open_store(w.path + "/store");
    auto moved = format::migrate_vector_slabs(**st, 7);
    REQUIRE(moved.ok());
    CHECK(*moved == n - 7);
    CHECK(format::migrate_vector_slabs(**st, 7).value() == 0);  // marked done
  }
  check_migrated(w, "snapshot");
  std::filesystem::remove_all(w.path);
}

TEST_CASE("a data directory whose vector slabs are all at full length (schema 6) opens as it is, answers as "
          "before, and its next writes store the slab they change up to its last present slot",
          "[node][vectors][data_dir][slabs]") {
  // Proves the schema 7 upgrade (D75): a directory written by this build is rewritten with raw
  // LMDB into what builds before D75 wrote (every slab n slots long, schema version 6); the store
  // upgrades the version number only, leaving every slab as it was (a full-length slab is a valid
  // version 7 one); the directory then answers get, search and its CRDT state as before, from its
  // snapshot; and a new record's write stores its (last, filling) slab at its filled length while
  // the slabs it did not touch keep their full length.
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  Written w = write_directory("slabs-v6", rng);
  const std::string store_path = w.path + "/store";
  const std::uint32_t n = format::slab_vectors(kDim);
  const std::size_t full = std::size_t{n} * kDim * 4 + ((n + 7) / 8 + 3) / 4 * 4 + 8;
  // 400 records at labels 1..400 (r9 deleted): the last slab, from label 336, holds 65 slots.
  CHECK(rewrite_as_version_6(store_path) == 1);
  Tables old = read_all(store_path);  // opening upgrades the schema number only
  for (const auto& kv : old.rows[store::Table::kVectorSlabs]) CHECK(kv.value.size() == full);
  {
    auto st = open_store(store_path);
    CHECK((*st)->upgraded_from() == 0);  // read_all upgraded it already
  }
  CHECK(read_all(store_path).rows[store::Table::kVectorSlabs] == old.rows[store::Table::kVectorSlabs]);
  check_migrated(w, "snapshot");
  {
    auto d = open_dir(w.path);
    RecordValue v;
    v.vector = random_vector(rng);
    REQUIRE(d->node().upsert("c", "fresh", v).ok());  // label 401, in the slab from label 336
    auto g = d->node().get("c", "fresh");
    REQUIRE(g.ok());
    CHECK(g->siblings.at(0).value.vector == v.vector);
  }
  const Tables after = read_all(store_path);
  const auto& slabs = after.rows.at(store::Table::kVectorSlabs);
  REQUIRE(slabs.size() == old.rows[store::Table::kVectorSlabs].size());
  for (const auto& kv : slabs) {
    const std::uint64_t first = store::decode_u64_be(std::string_view(kv.key).substr(4)).value();
    INFO("slab from label " << first);
    if (first == 336) {
      CHECK(kv.value.size() == std::size_t{401 - 336 + 1} * kDim * 4 + (full - std::size_t{n} * kDim * 4));
    } else {
      CHECK(kv.value.size() == full);
    }
  }
  std::filesystem::remove_all(w.path);
}

TEST_CASE("vector slabs are stored up to their last present slot and at least 2,048 bytes, and read back at "
          "every length",
          "[node][vectors][slabs]") {
  // Proves the stored length of a slab (schema 7, D75; docs/node-format.md, "Vector slabs"): at
  // 784-d (9 slots of 3,136 bytes) a slab grows by one slot per label written in order and
  // shrinks when its last vector is removed, so a single write into the filling slab rewrites its
  // filled part only; at 12-d (84 slots of 48 bytes) it never drops below the 43 slots that make
  // it 2,048 bytes (so it stays on overflow pages of its own). Every vector reads back at every
  // length, and a slab whose bitmap says present a slot it does not store, or whose size is no
  // whole number of slots, is kCorruption.
  const std::string path = fresh_dir("slab-lengths");
  auto st = open_store(path);
  auto slab_size = [&](std::uint32_t cid) {
    auto r = (*st)->begin_read();
    REQUIRE(r.ok());
    auto v = (*r)->get(store::Table::kVectorSlabs, format::vector_key(cid, 0));
    return v.ok() ? v->size() : std::size_t{0};
  };
  auto vector_of = [](std::uint32_t dim, float x) {
    std::vector<float> v(dim, x);
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  };
  auto write = [&](const std::function<Status(store::WriteTxn&)>& f) {
    auto txn = (*st)->begin_write();
    REQUIRE(txn.ok());
    REQUIRE(f(**txn).ok());
    REQUIRE((*txn)->commit().ok());
  };
  auto check_reads = [&](std::uint32_t cid, std::uint32_t dim, std::uint64_t last) {
    auto r = (*st)->begin_read();
    REQUIRE(r.ok());
    for (std::uint64_t l = 1; l <= last; ++l) {
      auto v = format::get_vector(**r, cid, dim, l);
      REQUIRE(v.ok());
      CHECK(*v == vector_of(dim, static_cast<float>(l)));
    }
    CHECK(format::get_vector(**r, cid, dim, last + 1).status().code() == Code::kNotFound);
  };
  REQUIRE(format::slab_vectors(784) == 9);
  constexpr std::size_t kTail784 = 4 + 8;  // bitmap of 9 bits in 4 bytes, trailer
  for (std::uint64_t l = 1; l < 9; ++l) {
    write([&](store::WriteTxn& t) { return format::put_vector(t, 1, l, vector_of(784, static_cast<float>(l))); });
    CHECK(slab_size(1) == (l + 1) * 3136 + kTail784);  // slot 0 (label 0) is empty but below the last
    check_reads(1, 784, l);
  }
  write([](store::WriteTxn& t) { return format::del_vector(t, 1, 8); });
  CHECK(slab_size(1) == 8 * 3136 + kTail784);
  check_reads(1, 784, 7);
  write([](store::WriteTxn& t) { return format::del_vector(t, 1, 3); });  // not the last: no shorter
  CHECK(slab_size(1) == 8 * 3136 + kTail784);
  for (std::uint64_t l : {1, 2, 4, 5, 6}) write([&](store::WriteTxn& t) { return format::del_vector(t, 1, l); });
  CHECK(slab_size(1) == 8 * 3136 + kTail784);
  write([](store::WriteTxn& t) { return format::del_vector(t, 1, 7); });
  CHECK(slab_size(1) == 0);  // emptied: deleted

  REQUIRE(format::slab_vectors(12) == 84);
  constexpr std::size_t kTail12 = 12 + 8;
  for (std::uint64_t l = 1; l <= 60; ++l) {
    write([&](store::WriteTxn& t) { return format::put_vector(t, 2, l, vector_of(12, static_cast<float>(l))); });
    CHECK(slab_size(2) == std::max<std::size_t>(43, l + 1) * 48 + kTail12);
  }
  CHECK(43 * 48 + kTail12 >= 2048);
  CHECK(42 * 48 + kTail12 < 2048);
  check_reads(2, 12, 60);

  // A slab of 2 stored slots at 784-d whose bitmap also says slot 5 present; one of 2.5 slots.
  std::string two = vector_of(784, 1.0f) + vector_of(784, 2.0f);
  const std::uint32_t trailer[2] = {9, 784};
  std::string lying = two + std::string("\x23\0\0\0", 4) + std::string(reinterpret_cast<const char*>(trailer), 8);
  std::string ragged = two + std::string(1568, '\0') + std::string("\x03\0\0\0", 4) +
                       std::string(reinterpret_cast<const char*>(trailer), 8);
  write([&](store::WriteTxn& t) { return t.put(store::Table::kVectorSlabs, format::vector_key(3, 0), lying); });
  write([&](store::WriteTxn& t) { return t.put(store::Table::kVectorSlabs, format::vector_key(4, 0), ragged); });
  {
    auto r = (*st)->begin_read();
    REQUIRE(r.ok());
    CHECK(format::get_vector(**r, 3, 784, 1).status().code() == Code::kCorruption);
    CHECK(format::get_vector(**r, 4, 784, 1).status().code() == Code::kCorruption);
    CHECK(format::scan_vectors(**r, 3, 784, [](std::uint64_t, std::string_view) { return true; }).code() ==
          Code::kCorruption);
  }
  st->reset();
  std::filesystem::remove_all(path);
}

TEST_CASE("vector slabs: sizes fill their pages, and vectors are stored, read, replaced and removed by label",
          "[node][vectors][slabs]") {
  // Proves the slab layout's arithmetic (docs/node-format.md, "Vector slabs") for the dimensions
  // the benches use and the operations on a real store: vectors across slab boundaries read back
  // exactly, an absent label is kNotFound (a label in an existing slab, and one past every slab),
  // a replaced vector reads new, a removed one is gone and a slab emptied is deleted, and a slab
  // value of the wrong size is kCorruption, never read.
  CHECK(format::slab_vectors(784) == 9);   // 28,236 bytes: 7 pages, 1.6% unused
  CHECK(format::slab_vectors(128) == 55);  // 28,176 bytes: 7 pages, 1.8% unused
  for (std::uint32_t dim : {1u, 3u, 12u, 100u, 128u, 784u, 960u, 1536u, 4096u, 20000u}) {
    const std::uint32_t n = format::slab_vectors(dim);
    INFO("dimension " << dim << " n " << n);
    CHECK(n >= 1);
    const std::uint64_t bytes = std::uint64_t{n} * dim * 4 + ((n + 7) / 8 + 3) / 4 * 4 + 8;
    CHECK((bytes <= 64 * 1024 || n == 1));
    CHECK((bytes >= 2048 || dim * 4 >= 2048));  // off the leaf pages, so its pages are its own
  }
  const std::string path = fresh_dir("slab-ops");
  auto st = open_store(path);
  const std::uint32_t n = format::slab_vectors(kDim);
  auto put = [&](std::uint64_t label, float x) {
    auto txn = (*st)->begin_write();
    REQUIRE(txn.ok());
    REQUIRE(format::put_vector(**txn, 1, label, filled_vector_bytes(x)).ok());
    REQUIRE((*txn)->commit().ok());
  };
  for (std::uint64_t l = 1; l < 2 * n + 3; ++l) put(l, static_cast<float>(l));
  put(n, -1.0f);
  {
    auto txn = (*st)->begin_read();
    REQUIRE(txn.ok());
    for (std::uint64_t l = 1; l < 2 * n + 3; ++l) {
      auto v = format::get_vector(**txn, 1, kDim, l);
      REQUIRE(v.ok());
      CHECK(*v == filled_vector_bytes(l == n ? -1.0f : static_cast<float>(l)));
    }
    CHECK(format::get_vector(**txn, 1, kDim, 0).status().code() == Code::kNotFound);
    CHECK(format::get_vector(**txn, 1, kDim, 5 * n).status().code() == Code::kNotFound);
    CHECK(format::get_vector(**txn, 2, kDim, 1).status().code() == Code::kNotFound);
    CHECK((*txn)->count(store::Table::kVectorSlabs).value() == 3);
  }
  {
    auto txn = (*st)->begin_write();
    REQUIRE(txn.ok());
    for (std::uint64_t l = 2 * n; l < 2 * n + 3; ++l) REQUIRE(format::del_vector(**txn, 1, l).ok());
    REQUIRE(format::del_vector(**txn, 1, 3).ok());
    REQUIRE(format::del_vector(**txn, 1, 3).ok());        // already gone: a no-op
    REQUIRE(format::del_vector(**txn, 1, 9 * n).ok());    // no slab: a no-op
    REQUIRE((*txn)->commit().ok());
    auto r = (*st)->begin_read();
    REQUIRE(r.ok());
    CHECK((*r)->count(store::Table::kVectorSlabs).value() == 2);  // the third emptied: deleted
    CHECK(format::get_vector(**r, 1, kDim, 3).status().code() == Code::kNotFound);
    CHECK(format::get_vector(**r, 1, kDim, 4).ok());
    std::size_t seen = 0;
    REQUIRE(format::scan_vectors(**r, 1, kDim, [&](std::uint64_t, std::string_view) { return ++seen > 0; }).ok());
    CHECK(seen == 2 * n - 2);
  }
  {
    auto txn = (*st)->begin_write();
    REQUIRE(txn.ok());
    REQUIRE((*txn)->put(store::Table::kVectorSlabs, format::vector_key(1, n), std::string(100, '\0')).ok());
    REQUIRE((*txn)->commit().ok());
    auto r = (*st)->begin_read();
    REQUIRE(r.ok());
    CHECK(format::get_vector(**r, 1, kDim, n + 1).status().code() == Code::kCorruption);
    CHECK(format::scan_vectors(**r, 1, kDim, [](std::uint64_t, std::string_view) { return true; }).code() ==
          Code::kCorruption);
  }
  st->reset();
  std::filesystem::remove_all(path);
}

TEST_CASE("the vectors table follows upserts, updates and deletes, and snapshots hold no floats",
          "[node][vectors]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  const std::string path = fresh_dir("follow");
  std::size_t live = 0;
  {
    auto d = open_dir(path);
    CollectionSpec spec;
    spec.name = "c";
    spec.dimension = kDim;
    REQUIRE(d->node().create_collection(spec).ok());
    for (int i = 0; i < 50; ++i) {
      RecordValue v;
      v.vector = random_vector(rng);
      REQUIRE(d->node().upsert("c", "r" + std::to_string(i), v).ok());
    }
    for (int i = 0; i < 50; i += 5) REQUIRE(d->node().remove("c", "r" + std::to_string(i)).ok());
    RecordValue v;
    v.vector = random_vector(rng);
    REQUIRE(d->node().upsert("c", "r1", v).ok());
    auto g = d->node().get("c", "r1");
    REQUIRE(g.ok());
    CHECK(g->siblings.at(0).value.vector == v.vector);
    live = 40;
  }
  check_vectors_apart(path + "/store", live);
  // The snapshot's float-vector byte (docs/index.md, offset 22) says "read from the store".
  const auto snap = path + "/snapshots/collection-1.hnsw";
  REQUIRE(std::filesystem::exists(snap));
  std::ifstream f(snap, std::ios::binary);
  char header[23] = {};
  REQUIRE(f.read(header, sizeof header));
  CHECK(int{header[22]} == 2);
  std::filesystem::remove_all(path);
}

TEST_CASE("an elided payload is not a valid payload, so no peer can send one", "[node][vectors]") {
  RecordValue v;
  v.vector = {1.0f, 2.0f};
  std::string p = encode_payload(v);
  std::string elided = p.substr(0, 1) + std::string("\xff\xff\xff\xff", 4) + p.substr(5 + 8);
  auto r = decode_payload(elided);
  REQUIRE(!r.ok());
  CHECK(r.status().detail() == Detail::kMalformed);
}

namespace {

std::string file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::size_t dirty_count(const std::string& store_path) {
  return read_all(store_path).rows[store::Table::kIndexDirty].size();
}

std::unique_ptr<OpenDataDir> open_dir_with(const std::string& path, std::size_t dirty_max) {
  DataDirOptions o;
  o.node.build_threads = 1;
  o.node.snapshot_dirty_max = dirty_max;
  auto d = open_data_dir(path, std::move(o));
  INFO(path << ": " << d.status().to_string());
  REQUIRE(d.ok());
  return std::move(d).value();
}

}  // namespace

TEST_CASE("closing after a few changes keeps the snapshot, and the next open replays the changed labels",
          "[node][vectors][snapshot]") {
  // Close in O(changes): the snapshot file is left as it is while at most snapshot_dirty_max
  // labels changed since it was written; they wait in the index_dirty table, and the next open
  // loads the snapshot and replays them (updates, deletes, new records), so every search sees
  // them. Past the limit, close writes the snapshot again and empties the table.
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  const std::string path = fresh_dir("dirty");
  const std::string snap = path + "/snapshots/collection-1.hnsw";
  std::map<std::string, std::vector<float>> live;
  {
    auto d = open_dir_with(path, 64);
    CollectionSpec spec;
    spec.name = "c";
    spec.dimension = kDim;
    REQUIRE(d->node().create_collection(spec).ok());
    std::vector<RecordInput> batch;
    for (int i = 0; i < 300; ++i) {
      RecordValue v;
      v.vector = random_vector(rng);
      live["r" + std::to_string(i)] = v.vector;
      batch.push_back(RecordInput{"r" + std::to_string(i), std::move(v)});
    }
    REQUIRE(d->node().upsert_batch("c", std::move(batch)).ok());
  }
  CHECK(dirty_count(path + "/store") == 0);  // the first close wrote the snapshot
  const std::string first = file_bytes(snap);
  REQUIRE(!first.empty());
  std::vector<std::string> deleted;
  {
    auto d = open_dir_with(path, 64);
    CHECK(d->node().open_report().index_source.at("c") == "snapshot");
    for (int i = 0; i < 20; ++i) {  // updates
      RecordValue v;
      v.vector = random_vector(rng);
      live["r" + std::to_string(i)] = v.vector;
      REQUIRE(d->node().upsert("c", "r" + std::to_string(i), v).ok());
    }
    for (int i = 20; i < 25; ++i) {  // deletes
      REQUIRE(d->node().remove("c", "r" + std::to_string(i)).ok());
      deleted.push_back("r" + std::to_string(i));
      live.erase("r" + std::to_string(i));
    }
    for (int i = 300; i < 310; ++i) {  // new records
      RecordValue v;
      v.vector = random_vector(rng);
      live["r" + std::to_string(i)] = v.vector;
      REQUIRE(d->node().upsert("c", "r" + std::to_string(i), v).ok());
    }
  }
  CHECK(file_bytes(snap) == first);  // close wrote no snapshot
  CHECK(dirty_count(path + "/store") == 35);
  {
    auto d = open_dir_with(path, 64);
    CHECK(d->node().open_report().index_source.at("c") == "snapshot");
    CHECK(d->node().open_report().snapshot_replayed.at("c") == 35);
    // Every live record is found by its own vector, at distance 0; no deleted one is returned.
    for (const auto& [id, vec] : live) {
      SearchOptions o;
      o.k = 3;
      o.ef = 64;
      auto hits = d->node().search("c", vec, o);
      REQUIRE(hits.ok());
      REQUIRE(!hits->empty());
      CHECK(hits->front().id == id);
      CHECK(hits->front().distance == Approx(0.0).margin(1e-4));
      for (const auto& h : *hits) CHECK(std::find(deleted.begin(), deleted.end(), h.id) == deleted.end());
    }
  }
  CHECK(file_bytes(snap) == first);
  // Past the limit (here 10), close writes the snapshot and empties the table.
  {
    auto d = open_dir_with(path, 10);
    CHECK(d->node().open_report().index_source.at("c") == "snapshot");
  }
  CHECK(file_bytes(snap) != first);
  CHECK(dirty_count(path + "/store") == 0);
  {
    auto d = open_dir_with(path, 10);
    CHECK(d->node().open_report().index_source.at("c") == "snapshot");
    CHECK(d->node().open_report().snapshot_replayed.at("c") == 0);
    auto hits = d->node().search("c", live.at("r305"), SearchOptions{});
    REQUIRE(hits.ok());
    CHECK(hits->front().id == "r305");
  }
  std::filesystem::remove_all(path);
}

TEST_CASE("replaying a few new labels on a loaded snapshot makes room for exactly them, not twice the graph",
          "[node][vectors][snapshot]") {
  // A snapshot loads with room for the elements it holds; the replay of the labels changed since
  // reserves room for the new ones first, so that 10 new labels on 1,100 do not double the
  // index's capacity (at 60k x 784 that was 117.7 instead of 61.7 MiB).
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  const std::string path = fresh_dir("replay-capacity");
  constexpr int kBase = 1100;  // above IndexParams::initial_capacity (1,024)
  {
    auto d = open_dir_with(path, 64);
    CollectionSpec spec;
    spec.name = "c";
    spec.dimension = kDim;
    REQUIRE(d->node().create_collection(spec).ok());
    std::vector<RecordInput> batch;
    for (int i = 0; i < kBase; ++i) {
      RecordValue v;
      v.vector = random_vector(rng);
      batch.push_back(RecordInput{"r" + std::to_string(i), std::move(v)});
    }
    REQUIRE(d->node().upsert_batch("c", std::move(batch)).ok());
  }
  std::uint64_t clean_bytes = 0;
  std::vector<float> last;
  {
    auto d = open_dir_with(path, 64);
    REQUIRE(d->node().open_report().index_source.at("c") == "snapshot");
    auto info = d->node().collection_info("c");
    REQUIRE(info.ok());
    clean_bytes = info->index_bytes;
    for (int i = kBase; i < kBase + 10; ++i) {
      RecordValue v;
      v.vector = random_vector(rng);
      last = v.vector;
      REQUIRE(d->node().upsert("c", "r" + std::to_string(i), v).ok());
    }
  }
  {
    auto d = open_dir_with(path, 64);
    REQUIRE(d->node().open_report().index_source.at("c") == "snapshot");
    CHECK(d->node().open_report().snapshot_replayed.at("c") == 10);
    auto info = d->node().collection_info("c");
    REQUIRE(info.ok());
    CHECK(info->live_records == kBase + 10);
    INFO("index bytes after a clean open " << clean_bytes << ", after the replay " << info->index_bytes);
    CHECK(static_cast<double>(info->index_bytes) < 1.05 * static_cast<double>(clean_bytes));
    auto hits = d->node().search("c", last, SearchOptions{});
    REQUIRE(hits.ok());
    REQUIRE(!hits->empty());
    CHECK(hits->front().id == "r" + std::to_string(kBase + 9));
  }
  std::filesystem::remove_all(path);
}

namespace {

// What a test compares between two opens of the same data: the digest root, every search hit
// (with a metadata filter, so the docs' metadata counts) for each probe vector.
struct OpenAnswers {
  std::uint64_t root = 0;
  std::vector<std::vector<std::pair<std::string, std::string>>> hits;  // id, model per hit
  std::uint64_t live = 0;
  friend bool operator==(const OpenAnswers&, const OpenAnswers&) = default;
};
OpenAnswers open_answers(OpenDataDir& d, const std::vector<std::vector<float>>& probes) {
  OpenAnswers a;
  auto root = d.node().digest_root("c");
  REQUIRE(root.ok());
  a.root = *root;
  auto info = d.node().collection_info("c");
  REQUIRE(info.ok());
  a.live = info->live_records;
  for (const auto& q : probes) {
    for (const char* f : {"", "g=1"}) {
      SearchOptions o;
      o.k = 5;
      o.ef = 200;
      auto filter = parse_filter(f);
      REQUIRE(filter.ok());
      o.filter = *filter;
      auto hits = d.node().search("c", q, o);
      REQUIRE(hits.ok());
      std::vector<std::pair<std::string, std::string>> row;
      for (const auto& h : *hits) row.emplace_back(h.id, h.model);
      a.hits.push_back(std::move(row));
    }
  }
  return a;
}

RecordValue tagged(Rng& rng, int group, const std::string& model) {
  RecordValue v;
  v.vector = random_vector(rng);
  v.metadata.fields.emplace_back("g", MetaValue(std::int64_t{group}));
  v.model = model;
  return v;
}

}  // namespace

TEST_CASE("open reads the open state, not the records, and a crash after writes replays exactly what changed",
          "[node][vectors][state]") {
  // Proves D59: close writes the collection's open state (docs, metadata, digests) beside its
  // snapshot; the next open loads it instead of scanning the records ("state"). A crash image
  // taken after more writes (a consistent copy of the running store, with the files of the last
  // close) opens from the state with the changed labels replayed from their records (updates
  // with new metadata, deletes, new records, a deleted id written again), and answers exactly
  // as an open that scans every record: same digest root, same hits with and without a metadata
  // filter, same models, same count. A state file that is damaged, or a dirty label without its
  // record id (as schema 5 wrote them), is refused with its reason and the records are scanned.
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  const std::string path = fresh_dir("state");
  const std::string crash = fresh_dir("state-crash");
  const std::string scan = fresh_dir("state-scan");
  std::vector<std::vector<float>> probes;
  {
    auto d = open_dir_with(path, 64);
    CollectionSpec spec;
    spec.name = "c";
    spec.dimension = kDim;
    REQUIRE(d->node().create_collection(spec).ok());
    std::vector<RecordInput> batch;
    for (int i = 0; i < 300; ++i) batch.push_back(RecordInput{"r" + std::to_string(i), tagged(rng, i % 3, "m1")});
    REQUIRE(d->node().upsert_batch("c", std::move(batch)).ok());
  }
  REQUIRE(std::filesystem::exists(path + "/snapshots/collection-1.state"));
  for (int i = 0; i < 20; ++i) probes.push_back(random_vector(rng));
  OpenAnswers after_crash;
  {
    auto d = open_dir_with(path, 64);
    CHECK(d->node().open_report().state_source.at("c") == "state");
    CHECK(d->node().open_report().index_source.at("c") == "snapshot");
    for (int i = 0; i < 15; ++i) REQUIRE(d->node().upsert("c", "r" + std::to_string(i), tagged(rng, 1, "m2")).ok());
    for (int i = 15; i < 25; ++i) REQUIRE(d->node().remove("c", "r" + std::to_string(i)).ok());
    for (int i = 300; i < 310; ++i) REQUIRE(d->node().upsert("c", "r" + std::to_string(i), tagged(rng, 1, "m3")).ok());
    REQUIRE(d->node().upsert("c", "r20", tagged(rng, 1, "again")).ok());  // deleted above, written again
    // A running node's backup (shoald --backup) refuses a destination inside its own directory.
    CHECK(d->backup_to(path + "/copy", false).status().code() == Code::kInvalidArgument);
    CHECK(!std::filesystem::exists(path + "/copy"));
    for (const auto& p : {crash, scan}) {
      REQUIRE(d->backup_to(p, false).ok());
      std::filesystem::copy(path + "/snapshots", p + "/snapshots");
    }
    after_crash = open_answers(*d, probes);
  }
  CHECK(after_crash.live == 300 - 10 + 10 + 1);
  std::filesystem::remove(scan + "/snapshots/collection-1.state");
  OpenAnswers from_state, from_scan;
  {
    auto d = open_dir_with(crash, 1000);
    CHECK(d->node().open_report().state_source.at("c") == "state");
    CHECK(d->node().open_report().snapshot_replayed.at("c") == 15 + 10 + 10 + 1);
    from_state = open_answers(*d, probes);
  }
  {
    auto d = open_dir_with(scan, 1000);
    CHECK(d->node().open_report().state_source.at("c") == "scan");
    from_scan = open_answers(*d, probes);
  }
  CHECK(from_state == from_scan);
  CHECK(from_state == after_crash);
  // The scan's close wrote the missing state (the snapshot was kept): the next open uses it.
  {
    auto d = open_dir_with(scan, 1000);
    CHECK(d->node().open_report().state_source.at("c") == "state");
    CHECK(open_answers(*d, probes) == from_scan);
  }
  // A damaged state file: refused with its reason, the records are scanned, answers unchanged.
  {
    std::string bytes = file_bytes(crash + "/snapshots/collection-1.state");
    REQUIRE(bytes.size() > 100);
    bytes[bytes.size() / 2] ^= 0x40;
    std::ofstream(crash + "/snapshots/collection-1.state", std::ios::binary | std::ios::trunc) << bytes;
    auto d = open_dir_with(crash, 1000);
    CHECK(d->node().open_report().state_source.at("c") == "scan");
    CHECK(d->node().open_report().state_rejected.at("c").find("checksum") != std::string::npos);
    CHECK(open_answers(*d, probes) == from_scan);
  }
  // A dirty label without its record id (schema 5 wrote empty values): refused, scanned.
  {
    {
      auto st = open_store(crash + "/store");
      auto txn = (*st)->begin_write();
      REQUIRE(txn.ok());
      REQUIRE((*txn)->put(store::Table::kIndexDirty, format::vector_key(1, 5), "").ok());
      REQUIRE((*txn)->commit().ok());
    }
    auto d = open_dir_with(crash, 1000);
    CHECK(d->node().open_report().state_source.at("c") == "scan");
    CHECK(d->node().open_report().state_rejected.at("c").find("no record id") != std::string::npos);
    CHECK(open_answers(*d, probes) == from_scan);
  }
  for (const auto& p : {path, crash, scan}) std::filesystem::remove_all(p);
}

namespace {

// Every collection entry of the delta buffer at `store_path`, as DeltaBuffer::delta_of sends it,
// and whether each is stored as a skeleton; also the deltas table's bytes.
struct BufferView {
  std::vector<crdt::Delta> sent;
  std::vector<bool> skeleton;
  std::size_t bytes = 0;
};
BufferView buffer_view(const std::string& store_path) {
  auto st = open_store(store_path);
  auto txn = (*st)->begin_read();
  REQUIRE(txn.ok());
  BufferView out;
  DeltaBuffer reader(1000000);
  REQUIRE(reader.scan(**txn, 0, 1000000, [&](std::uint64_t, const format::BufferEntry& e) {
    out.bytes += e.stored.size();
    if (e.cid == format::kCatalogueCid) return true;
    auto d = DeltaBuffer::delta_of(**txn, e);
    REQUIRE(d.ok());
    out.sent.push_back(std::move(d).value());
    out.skeleton.push_back(e.skeleton);
    return true;
  }).ok());
  return out;
}

// Rewrites the buffer at `store_path` as schema version 3 wrote it: every collection entry whole
// (each entry with a payload: the record's current one while its dot is live, else `lost`, the
// payload an overwritten write had then), schema version 3, no skeletons key.
void rewrite_buffer_as_version_3(const std::string& store_path, const std::string& lost) {
  auto st = open_store(store_path);
  auto txn = (*st)->begin_write();
  REQUIRE(txn.ok());
  auto rows = (*txn)->collect(store::Table::kDeltas, store::Range::all());
  REQUIRE(rows.ok());
  for (const auto& kv : *rows) {
    auto e = format::decode_buffer_entry(kv.value);
    REQUIRE(e.ok());
    if (!e->skeleton) continue;
    auto bones = crdt::decode_delta(format::as_bytes(e->stored));
    auto sent = DeltaBuffer::delta_of(**txn, *e);
    REQUIRE(bones.ok());
    REQUIRE(sent.ok());
    crdt::Delta whole = *bones;
    for (auto& [id, entries] : whole.records) {
      for (auto& entry : entries) {
        entry.payload = format::to_bytes(lost);
        for (const auto& live : sent->records.at(id)) {
          if (live.dot == entry.dot) entry.payload = live.payload;
        }
      }
    }
    REQUIRE((*txn)->put(store::Table::kDeltas, kv.key,
                        format::encode_buffer_entry(e->cid, e->has_origin ? &e->origin : nullptr, e->origin_hot, whole,
                                                    /*skeleton=*/false))
                .ok());
  }
  REQUIRE((*txn)->put(store::Table::kMeta, store::kSchemaVersionKey, std::string("\0\0\0\x03", 4)).ok());
  REQUIRE((*txn)->del(store::Table::kMeta, format::kBufferSkeletonsKey).ok());
  REQUIRE((*txn)->commit().ok());
}

}  // namespace

TEST_CASE("a data directory whose delta buffer holds whole payloads (schema 3) is rewritten to skeletons at open, "
          "and every entry sends what it sent before", "[node][vectors][data_dir][buffer]") {
  // Proves DeltaBuffer::migrate (schema version 4, D51): a real directory written by this build
  // is rewritten into version 3's buffer (every entry with its payloads; an overwritten write's
  // entry with a payload the store no longer holds); the next open marks the store version 4,
  // writes node.buffer_skeletons, stores every collection entry as a skeleton in fewer bytes,
  // and each entry re-hydrates exactly as before the rewrite (the overwritten payload is never
  // sent again: the entry is context-only, as it was). A second open rewrites nothing.
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  const std::string path = fresh_dir("buffer");
  std::vector<float> r1_now;
  {
    auto d = open_dir(path);
    CollectionSpec spec;
    spec.name = "c";
    spec.dimension = kDim;
    REQUIRE(d->node().create_collection(spec).ok());
    for (int i = 0; i < 20; ++i) {
      RecordValue v;
      v.vector = random_vector(rng);
      REQUIRE(d->node().upsert("c", "r" + std::to_string(i), v).ok());
    }
    RecordValue v;
    v.vector = random_vector(rng);
    REQUIRE(d->node().upsert("c", "r1", v).ok());
    REQUIRE(d->node().remove("c", "r2").ok());
    r1_now = v.vector;
  }
  const BufferView before = buffer_view(path + "/store");
  REQUIRE(before.sent.size() == 22);
  CHECK(before.sent[1].records.at("r1").empty());  // overwritten since: context only
  RecordValue old;
  old.vector = std::vector<float>(kDim, 7.0f);
  rewrite_buffer_as_version_3(path + "/store", encode_payload(old));
  const BufferView v3 = buffer_view(path + "/store");
  for (bool s : v3.skeleton) CHECK_FALSE(s);
  // As version 3 sent them: whole, so the overwritten write's entry still carries its old payload.
  REQUIRE(v3.sent.size() == before.sent.size());
  REQUIRE(v3.sent[1].records.at("r1").size() == 1);
  CHECK(v3.sent[1].records.at("r1").at(0).payload == format::to_bytes(encode_payload(old)));
  CHECK(v3.sent[3] == before.sent[3]);
  {
    auto d = open_dir(path);
    auto g = d->node().get("c", "r1");
    REQUIRE(g.ok());
    CHECK(g->siblings.at(0).value.vector == r1_now);
  }
  const BufferView after = buffer_view(path + "/store");
  for (bool s : after.skeleton) CHECK(s);
  CHECK(after.sent == before.sent);
  CHECK(after.bytes < v3.bytes);
  Tables t = read_all(path + "/store");
  bool marked = false;
  for (const auto& kv : t.rows[store::Table::kMeta]) {
    marked |= kv.key == format::kBufferSkeletonsKey;
    if (kv.key == store::kSchemaVersionKey) CHECK(kv.value == store::encode_u64_be(store::kSchemaVersion).substr(4));
  }
  CHECK(marked);
  {
    auto d = open_dir(path);  // nothing left to rewrite
    CHECK(d->node().get("c", "r2").status().detail() == Detail::kNoSuchRecord);
  }
  CHECK(buffer_view(path + "/store").sent == before.sent);
  std::filesystem::remove_all(path);
}

namespace {

// The first component of `label`'s vector through `r`, after checking that every component is
// the same (no reader may see a vector half old, half new); NaN when the reader has none.
float read_version(index::FloatReader& r, std::uint64_t label) {
  const float* v = r.get(label);
  if (v == nullptr) return std::numeric_limits<float>::quiet_NaN();
  for (std::uint32_t i = 1; i < kDim; ++i) REQUIRE(v[i] == v[0]);
  return v[0];
}

Status put_vector(store::Store& st, std::uint64_t label, float x) {
  SHOAL_ASSIGN_OR_RETURN(auto txn, st.begin_write());
  SHOAL_RETURN_IF_ERROR(format::put_vector(*txn, 1, label, filled_vector_bytes(x)));
  return txn->commit();
}

}  // namespace

TEST_CASE("the vector pointer cache remembers by label, and nothing past its bound", "[node][vectors][cache]") {
  // Proves VectorPointerCache's contract: unknown labels are not found, a remembered pointer is
  // found again (in a chunk of its own or shared), and labels at or past kLabels are never kept.
  VectorPointerCache cache(store::ReadTxn::Stamp{7, 0});
  const char bytes[3] = {};
  CHECK(cache.find(1) == nullptr);
  cache.remember(1, bytes);
  cache.remember(VectorPointerCache::kChunkLabels + 5, bytes + 1);
  CHECK(cache.find(1) == bytes);
  CHECK(cache.find(2) == nullptr);
  CHECK(cache.find(VectorPointerCache::kChunkLabels + 5) == bytes + 1);
  cache.remember(VectorPointerCache::kLabels, bytes + 2);
  CHECK(cache.find(VectorPointerCache::kLabels) == nullptr);
  CHECK(cache.stamp() == store::ReadTxn::Stamp{7, 0});
}

TEST_CASE("readers of the store's vectors see their own snapshot: a rewritten vector is never read old after "
          "the write, through the pointer cache and across map growth",
          "[node][vectors][cache]") {
  // StoreFloatSource's readers share a cache of pointers into LMDB's map per snapshot. A reader
  // that began before a write keeps its snapshot's floats; every reader that begins after the
  // commit reads the new ones (the commit makes a new stamp, so the old pointers are not used);
  // a deleted vector is gone for new readers; and after the map grows (it moves; the stamp's
  // mapping count changes) readers read the right floats from the new map.
  const std::string path = fresh_dir("cache");
  store::LmdbStoreOptions o;
  o.path = path;
  o.map_size_initial_bytes = 64 << 10;  // the minimum, so the writes below make it grow
  auto st = store::LmdbStore::open(o);
  REQUIRE(st.ok());
  store::LmdbStore& store = **st;
  constexpr std::uint64_t kLabels = 40;
  for (std::uint64_t l = 1; l <= kLabels; ++l) REQUIRE(put_vector(store, l, 1.0f).ok());
  const StoreFloatSource source(store, 1, kDim);
  {
    auto before = source.reader();
    REQUIRE(before != nullptr);
    // Fill the cache through get_many, as a search does.
    std::vector<std::uint64_t> labels;
    for (std::uint64_t l = 1; l <= kLabels; ++l) labels.push_back(l);
    std::vector<const float*> out(labels.size());
    before->get_many(labels, out.data());
    for (const float* v : out) {
      REQUIRE(v != nullptr);
      CHECK(v[0] == 1.0f);
    }
    {
      auto same = source.reader();  // the same snapshot: served from the cache
      for (std::uint64_t l = 1; l <= kLabels; ++l) CHECK(same->get(l) == out[l - 1]);
    }
    REQUIRE(put_vector(store, 3, 2.0f).ok());
    {
      auto after = source.reader();
      CHECK(read_version(*after, 3) == 2.0f);
      CHECK(read_version(*after, 4) == 1.0f);
    }
    // The older reader still reads its own snapshot (and does not use the newer cache).
    CHECK(read_version(*before, 3) == 1.0f);
    std::vector<std::uint64_t> three{3};
    const float* v3 = nullptr;
    before->get_many(three, &v3);
    REQUIRE(v3 != nullptr);
    CHECK(v3[0] == 1.0f);
  }
  {
    auto txn = store.begin_write();
    REQUIRE(txn.ok());
    REQUIRE(format::del_vector(**txn, 1, 5).ok());
    REQUIRE((*txn)->commit().ok());
    auto after = source.reader();
    CHECK(after->get(5) == nullptr);
  }
  // Grow the map: many more vectors than 64 KiB hold (a slab rewritten many times per
  // transaction: the replay after growth writes its last value).
  const std::uint64_t grown_before = store.grow_count();
  std::uint64_t label = kLabels + 1;
  while (store.grow_count() == grown_before) {
    auto txn = store.begin_write();
    REQUIRE(txn.ok());
    for (int i = 0; i < 32; ++i, ++label) {
      REQUIRE(format::put_vector(**txn, 1, label, filled_vector_bytes(3.0f)).ok());
    }
    REQUIRE((*txn)->commit().ok());
  }
  auto grown = source.reader();
  CHECK(read_version(*grown, 3) == 2.0f);
  CHECK(read_version(*grown, 4) == 1.0f);
  CHECK(read_version(*grown, label - 1) == 3.0f);
  grown.reset();
  st->reset();
  std::filesystem::remove_all(path);
}

TEST_CASE("searches running while a record's vector is rewritten never re-rank it with floats older than the "
          "last acknowledged write",
          "[node][vectors][cache][concurrency]") {
  // Writes interleave with searches through the thread-safe node (the C API's path): one thread
  // rewrites record "x" to version v (every component v), publishing v once upsert returns; two
  // threads search with the zero query meanwhile. Each search that begins after version v was
  // acknowledged must return "x" at a distance of at least that of version v (squared L2 from
  // zero: kDim * v * v): the re-ranking read floats at least that new, never a cached pointer to
  // an older snapshot's floats. The other records lie far away, so "x" is always the nearest.
  const std::string path = fresh_dir("interleave");
  {
    auto d = open_dir(path);
    CollectionSpec spec;
    spec.name = "c";
    spec.dimension = kDim;
    REQUIRE(d->node().create_collection(spec).ok());
    std::vector<RecordInput> batch;
    for (int i = 0; i < 300; ++i) {  // above the index's exact-scan bound: the graph path
      RecordValue v;
      v.vector.assign(kDim, 1000.0f + static_cast<float>(i));
      batch.push_back(RecordInput{"far" + std::to_string(i), std::move(v)});
    }
    RecordValue x;
    x.vector.assign(kDim, 1.0f);
    batch.push_back(RecordInput{"x", x});
    REQUIRE(d->node().upsert_batch("c", std::move(batch)).ok());
    constexpr int kVersions = 60;
    std::atomic<int> acknowledged{1};
    std::atomic<bool> done{false};
    std::atomic<int> failures{0}, searches{0};
    auto searcher = [&] {
      const std::vector<float> zero(kDim, 0.0f);
      SearchOptions so;
      so.k = 1;
      while (!done.load()) {
        const int v = acknowledged.load();
        auto hits = d->node().search("c", zero, so);
        searches.fetch_add(1);
        const float floor = static_cast<float>(kDim) * static_cast<float>(v) * static_cast<float>(v);
        if (!hits.ok() || hits->size() != 1 || hits->front().id != "x" || hits->front().distance < floor * 0.999f) {
          failures.fetch_add(1);
        }
      }
    };
    std::thread s1(searcher), s2(searcher);
    for (int v = 2; v <= kVersions; ++v) {
      RecordValue x2;
      x2.vector.assign(kDim, static_cast<float>(v));
      REQUIRE(d->node().upsert("c", "x", x2).ok());
      acknowledged.store(v);
    }
    done.store(true);
    s1.join();
    s2.join();
    INFO("searches " << searches.load());
    CHECK(failures.load() == 0);
    CHECK(searches.load() > 0);
  }
  std::filesystem::remove_all(path);
}

TEST_CASE("a close that keeps the snapshot leaves the index queue to the next open, whose answers equal "
          "those before the close, on every metric",
          "[node][vectors][snapshot]") {
  // Close in O(changes) (D65): with the snapshot kept, close neither drains the index queue nor
  // writes the snapshot; the queued operations are committed and their labels are in index_dirty,
  // so the next open replays them (in batches on build_threads threads). The searches are near
  // exhaustive (ef above the collection's size), so before the close (graph + queue scanned
  // exactly) and after the reopen (graph with the replayed labels) must give the same hits.
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  for (const Metric metric : index::kAllMetrics) {
    INFO("metric " << static_cast<int>(metric));
    Rng rng(seed + static_cast<std::uint64_t>(metric));
    const std::string path = fresh_dir("keepqueue");
    const std::string snap = path + "/snapshots/collection-1.hnsw";
    auto open = [&path] {
      DataDirOptions o;
      o.node.build_threads = 2;  // the replay's batches run on two threads
      auto d = open_data_dir(path, std::move(o));
      INFO(path << ": " << d.status().to_string());
      REQUIRE(d.ok());
      return std::move(d).value();
    };
    {
      auto d = open();
      CollectionSpec spec;
      spec.name = "c";
      spec.dimension = kDim;
      spec.metric = metric;
      REQUIRE(d->node().create_collection(spec).ok());
      std::vector<RecordInput> batch;
      for (int i = 0; i < 300; ++i) batch.push_back(RecordInput{"r" + std::to_string(i), RecordValue{random_vector(rng), {}, ""}});
      REQUIRE(d->node().upsert_batch("c", std::move(batch)).ok());
    }
    const std::string first = file_bytes(snap);
    REQUIRE(!first.empty());
    std::vector<std::vector<float>> queries;
    for (int q = 0; q < 25; ++q) queries.push_back(random_vector(rng));
    SearchOptions o;
    o.k = 10;
    o.ef = 1024;
    std::vector<std::vector<Hit>> before;
    {
      auto d = open();
      REQUIRE(d->node().open_report().index_source.at("c") == "snapshot");
      d->node().pause_index_for_testing(true);  // everything below stays in the queue
      for (int i = 0; i < 20; ++i) {  // updates
        REQUIRE(d->node().upsert("c", "r" + std::to_string(i), RecordValue{random_vector(rng), {}, ""}).ok());
      }
      for (int i = 20; i < 25; ++i) REQUIRE(d->node().remove("c", "r" + std::to_string(i)).ok());
      std::vector<RecordInput> more;  // new records, as one batch (a run of adds in the queue)
      for (int i = 300; i < 340; ++i) more.push_back(RecordInput{"r" + std::to_string(i), RecordValue{random_vector(rng), {}, ""}});
      REQUIRE(d->node().upsert_batch("c", std::move(more)).ok());
      REQUIRE(d->node().index_backlog() == 65);
      for (const auto& q : queries) {
        auto hits = d->node().search("c", q, o);
        REQUIRE(hits.ok());
        before.push_back(*hits);
      }
    }  // close with 65 operations queued
    CHECK(file_bytes(snap) == first);                   // the snapshot was kept
    CHECK(dirty_count(path + "/store") == 65);          // and the changes wait in index_dirty
    {
      auto d = open();
      CHECK(d->node().open_report().index_source.at("c") == "snapshot");
      CHECK(d->node().open_report().snapshot_replayed.at("c") == 65);
      // The open queued the 65 changes (D78) and answers at once; the answers are the same
      // whatever part of the queue the index thread has applied, and again once it is empty.
      constexpr float kTie = 1e-5f;
      auto same_as_before = [&] {
        for (std::size_t q = 0; q < queries.size(); ++q) {
          auto hits = d->node().search("c", queries[q], o);
          REQUIRE(hits.ok());
          INFO("query " << q);
          REQUIRE(hits->size() == before[q].size());
          for (std::size_t i = 0; i < hits->size(); ++i) {
            const Hit& now = (*hits)[i];
            INFO("hit " << i << ": " << now.id << " at " << now.distance << ", before " << before[q][i].id << " at "
                        << before[q][i].distance);
            CHECK(now.distance == Approx(before[q][i].distance).margin(kTie));
            // The same id, or one whose distance ties with it within float rounding: the queue's
            // exact scan and the graph's re-ranking sum in different orders, so two records at
            // (nearly) one distance may swap places, or swap across the k-th (seed 462751432).
            bool same = now.id == before[q][i].id;
            for (const Hit& b : before[q]) same = same || (b.id == now.id && std::abs(b.distance - now.distance) <= kTie);
            same = same || std::abs(now.distance - before[q].back().distance) <= kTie;
            CHECK(same);
          }
        }
      };
      same_as_before();
      d->node().wait_index_idle_for_testing();
      CHECK(d->node().index_backlog() == 0);
      same_as_before();
    }
    std::filesystem::remove_all(path);
  }
}

TEST_CASE("an open that queues the labels changed since the snapshot keeps the snapshot when some of them are "
          "records evicted to stubs since it was written",
          "[node][vectors][snapshot][evict]") {
  // D78: the open queues a removal for each stub the snapshot still holds, and then checks that
  // the snapshot with the queue applied holds exactly the live records that are not stubs. The
  // labels no live record has are taken out of the loaded graph at once, stubs among them, so a
  // queued removal of a label the graph no longer holds must not be counted again: the snapshot
  // is kept (index_source "snapshot", nothing rejected), and the stubs never answer a search.
  // The stubs are made by this node's own eviction; the evict_unacked switch lets it evict
  // without a sink acknowledging first (the stubs are the same as after an acknowledgement).
  const std::string path = fresh_dir("evictqueue");
  const std::string snap = path + "/snapshots/collection-1.hnsw";
  auto wall_ns = std::make_shared<std::int64_t>(1'700'000'000'000'000'000);
  auto open = [&path, wall_ns] {
    DataDirOptions o;
    o.node.build_threads = 1;
    o.node.wall_clock = [wall_ns] { return WallTime::from_ns(*wall_ns += 1000); };
    o.node.mutations.evict_unacked = true;
    auto d = open_data_dir(path, std::move(o));
    INFO(path << ": " << d.status().to_string());
    REQUIRE(d.ok());
    return std::move(d).value();
  };
  Rng rng(Catch::rngSeed());
  INFO("seed " << Catch::rngSeed());
  constexpr int kRecords = 300;
  constexpr std::uint64_t kEvicted = 5;
  std::vector<std::vector<float>> vectors;
  {
    auto d = open();
    CollectionSpec spec;
    spec.name = "c";
    spec.dimension = kDim;
    REQUIRE(d->node().create_collection(spec).ok());
    std::vector<RecordInput> batch;
    for (int i = 0; i < kRecords; ++i) {
      vectors.push_back(random_vector(rng));
      batch.push_back(RecordInput{"r" + std::to_string(i), RecordValue{vectors.back(), {}, ""}});
    }
    REQUIRE(d->node().upsert_batch("c", std::move(batch)).ok());
  }  // the first close writes the snapshot
  const std::string first = file_bytes(snap);
  REQUIRE(!first.empty());
  {
    auto d = open();
    REQUIRE(d->node().open_report().index_source.at("c") == "snapshot");
    *wall_ns += std::int64_t{3600} * 1'000'000'000;  // every record is out of the hot window
    const Result<EvictStep> step = d->node().write([&](Node& n) -> Result<EvictStep> {
      TierPolicies policies;
      TierPolicy t;
      t.sink = true;
      t.hot_window = Duration::zero();
      policies.collections.emplace("c", t);
      SHOAL_RETURN_IF_ERROR(n.set_tier_policies(policies));
      SHOAL_RETURN_IF_ERROR(n.enable_sink_feed({}));
      EvictionOptions e;
      e.payload_budget_bytes = (kRecords - kEvicted) * kDim * sizeof(float);
      e.max_records_per_step = kEvicted;
      e.payload_digest = [](std::string_view) { return PayloadDigest{}; };
      SHOAL_RETURN_IF_ERROR(n.set_eviction(std::move(e)));
      return n.evict_step();
    });
    INFO(step.status().to_string());
    REQUIRE(step.ok());
    REQUIRE(step->evicted == kEvicted);
  }  // the close keeps the snapshot: the stubs' labels wait in index_dirty
  CHECK(file_bytes(snap) == first);
  CHECK(dirty_count(path + "/store") == kEvicted);
  {
    auto d = open();
    const OpenReport& report = d->node().open_report();
    INFO((report.snapshot_rejected.count("c") != 0 ? report.snapshot_rejected.at("c") : std::string("not rejected")));
    CHECK(report.snapshot_rejected.count("c") == 0);
    CHECK(report.index_source.at("c") == "snapshot");
    CHECK(report.snapshot_replayed.at("c") == kEvicted);
    // Every record that is not a stub is its own nearest neighbour; no stub answers.
    auto check_answers = [&] {
      std::size_t stubs = 0;
      SearchOptions so;
      so.k = 1;
      so.ef = 512;
      for (int i = 0; i < kRecords; ++i) {
        const std::string id = "r" + std::to_string(i);
        auto got = d->node().get("c", id);
        REQUIRE(got.ok());
        auto hits = d->node().search("c", vectors[static_cast<std::size_t>(i)], so);
        REQUIRE(hits.ok());
        REQUIRE(hits->size() == 1);
        if (got->siblings.at(0).evicted) {
          ++stubs;
          CHECK((*hits)[0].id != id);
        } else {
          CHECK((*hits)[0].id == id);
        }
      }
      CHECK(stubs == kEvicted);
    };
    check_answers();
    d->node().wait_index_idle_for_testing();
    CHECK(d->node().index_backlog() == 0);
    check_answers();
  }
  std::filesystem::remove_all(path);
}

TEST_CASE("an open whose replay finds a live record's vector missing from the vector slabs refuses with "
          "kCorruption naming the collection and the label, as a rebuild does",
          "[node][vectors][snapshot]") {
  // A record written after the snapshot is replayed from its vector slab at the next open (D65,
  // D78). A slab that lost the vector of a live record that is not a stub is a damaged store:
  // the open must say so (kCorruption, the collection and the label), as the full rebuild's count
  // does, and not answer kNotFound, which names no collection and reads as a missing directory or
  // record. Both replay paths are checked: queued (the runtime's queue) and inserted at open (a
  // queue too small for the changed labels).
  for (const std::size_t queue_max : {std::size_t{0}, std::size_t{1}}) {
    INFO("index_queue_max " << queue_max << (queue_max == 0 ? " (the runtime's default: queued)" : " (inserted)"));
    const std::string path = fresh_dir("lostvector");
    Rng rng(Catch::rngSeed());
    {
      auto d = open_dir(path);
      CollectionSpec spec;
      spec.name = "c";
      spec.dimension = kDim;
      REQUIRE(d->node().create_collection(spec).ok());
      std::vector<RecordInput> batch;
      for (int i = 0; i < 50; ++i) batch.push_back(RecordInput{"r" + std::to_string(i), RecordValue{random_vector(rng), {}, ""}});
      REQUIRE(d->node().upsert_batch("c", std::move(batch)).ok());
    }  // the first close writes the snapshot
    {
      auto d = open_dir(path);
      REQUIRE(d->node().open_report().index_source.at("c") == "snapshot");
      REQUIRE(d->node().upsert("c", "x", RecordValue{random_vector(rng), {}, ""}).ok());
      REQUIRE(d->node().upsert("c", "y", RecordValue{random_vector(rng), {}, ""}).ok());
    }  // kept: the two new labels wait in index_dirty
    const Tables before = read_all(path + "/store");
    REQUIRE(before.rows.at(store::Table::kIndexDirty).size() == 2);
    const std::string& dirty_key = before.rows.at(store::Table::kIndexDirty).front().key;
    auto label = store::decode_u64_be(std::string_view(dirty_key).substr(4));
    REQUIRE(label.ok());
    {
      auto st = open_store(path + "/store");
      auto txn = (*st)->begin_write();
      REQUIRE(txn.ok());
      REQUIRE(format::del_vector(**txn, 1, *label).ok());  // the damage: the record stays
      REQUIRE((*txn)->commit().ok());
    }
    DataDirOptions o;
    o.node.build_threads = 1;
    o.node.index_queue_max = queue_max;
    auto d = open_data_dir(path, std::move(o));
    REQUIRE_FALSE(d.ok());
    INFO(d.status().to_string());
    CHECK(d.status().code() == Code::kCorruption);
    CHECK(d.status().to_string().find("label " + std::to_string(*label)) != std::string::npos);
    CHECK(d.status().to_string().find("'c'") != std::string::npos);
    std::filesystem::remove_all(path);
  }
}

TEST_CASE("an open queues the labels changed since the snapshot only while the node's whole queue stays within "
          "its bound; the collections past it are inserted before the open returns",
          "[node][vectors][snapshot]") {
  // NodeOptions::index_queue_max bounds the node's queue, the sum over its collections (D33,
  // D77); D78 queues a collection's changed labels when they fit in it. Three collections with 8
  // changed labels each under a bound of 20: the first two are queued (16), the third would pass
  // the bound and is inserted at open instead. The node is opened directly (no index thread), so
  // the backlog right after the open is what the open queued. Every collection then answers each
  // of its records as its own nearest neighbour, queued or inserted.
  const std::string path = fresh_dir("queuebound");
  Rng rng(Catch::rngSeed());
  INFO("seed " << Catch::rngSeed());
  const std::vector<std::string> names = {"a", "b", "c"};
  std::map<std::string, std::map<std::string, std::vector<float>>> vectors;
  {
    auto d = open_dir(path);
    for (const std::string& name : names) {
      CollectionSpec spec;
      spec.name = name;
      spec.dimension = kDim;
      REQUIRE(d->node().create_collection(spec).ok());
      std::vector<RecordInput> batch;
      for (int i = 0; i < 40; ++i) {
        const std::string id = "r" + std::to_string(i);
        vectors[name][id] = random_vector(rng);
        batch.push_back(RecordInput{id, RecordValue{vectors[name][id], {}, ""}});
      }
      REQUIRE(d->node().upsert_batch(name, std::move(batch)).ok());
    }
  }  // the first close writes the snapshots
  {
    auto d = open_dir(path);
    for (const std::string& name : names) {
      REQUIRE(d->node().open_report().index_source.at(name) == "snapshot");
      for (int i = 0; i < 8; ++i) {  // 4 updates and 4 new records
        const std::string id = "r" + std::to_string(i < 4 ? i : 36 + i);
        vectors[name][id] = random_vector(rng);
        REQUIRE(d->node().upsert(name, id, RecordValue{vectors[name][id], {}, ""}).ok());
      }
    }
  }  // kept: 8 changed labels per collection wait in index_dirty
  REQUIRE(dirty_count(path + "/store") == 24);
  auto st = open_store(path + "/store");
  FileSnapshotStore snapshots(path + "/snapshots");
  NodeOptions o;
  o.snapshots = &snapshots;
  o.wall_clock = [] { return WallTime::from_ns(1'700'000'000'000'000'000); };
  o.build_threads = 1;
  o.index_queue_max = 20;
  auto n = Node::open(**st, std::move(o));
  INFO(n.status().to_string());
  REQUIRE(n.ok());
  for (const std::string& name : names) CHECK((*n)->open_report().index_source.at(name) == "snapshot");
  CHECK((*n)->index_backlog() == 16);
  for (const std::string& name : names) {
    INFO("collection " << name);
    SearchOptions so;
    so.k = 1;
    so.ef = 256;
    for (const auto& [id, v] : vectors[name]) {
      auto hits = (*n)->search(name, v, so);
      REQUIRE(hits.ok());
      REQUIRE(hits->size() == 1);
      CHECK((*hits)[0].id == id);
    }
  }
  (*n)->drain_index();
  CHECK((*n)->index_backlog() == 0);
  n->reset();
  st->reset();
  std::filesystem::remove_all(path);
}
