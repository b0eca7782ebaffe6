// transport/mdns_peers.cpp: the table of peers heard by mDNS (transport/mdns_internal.hpp).
#include <algorithm>
#include <map>
#include <set>

#include "transport/mdns_internal.hpp"

namespace shoal::transport::mdns {
namespace {

std::string dotted(std::uint32_t ipv4) {
  return std::to_string(ipv4 >> 24) + "." + std::to_string((ipv4 >> 16) & 0xffu) + "." +
         std::to_string((ipv4 >> 8) & 0xffu) + "." + std::to_string(ipv4 & 0xffu);
}

// "<label>._shoal._tcp.local" (canonicalize() already checked that the label has no dot).
bool is_instance(std::string_view name) {
  return name.size() > kServiceName.size() + 1 &&
         name.substr(name.size() - kServiceName.size()) == kServiceName &&
         name[name.size() - kServiceName.size() - 1] == '.';
}

PeerEvent lost_event(const std::string& device_id) {
  PeerEvent e;
  e.sighting.device_id = device_id;
  return e;
}

MonoTime deadline(MonoTime now, std::uint32_t ttl_s) {
  return now + Duration::seconds(std::min(ttl_s, PeerTable::kMaxTtlSeconds));
}

}  // namespace

PeerTable::PeerTable(std::string self_device_id, std::size_t max_peers)
    : self_device_id_(std::move(self_device_id)),
      self_instance_(instance_name(self_device_id_)),
      max_peers_(max_peers) {}

PeerTable::Peer* PeerTable::find_or_add(const std::string& instance) {
  auto it = peers_.find(instance);
  if (it != peers_.end()) return &it->second;
  if (peers_.size() >= max_peers_) {
    ++over_limit_;
    return nullptr;
  }
  return &peers_[instance];
}

void PeerTable::goodbye(const std::string& instance, std::vector<PeerEvent>& events) {
  auto it = peers_.find(instance);
  if (it == peers_.end()) return;
  if (it->second.reported) events.push_back(lost_event(it->second.reported->device_id));
  peers_.erase(it);
}

void PeerTable::apply(const Packet& packet, std::uint32_t source_ipv4, MonoTime now,
                      std::vector<PeerEvent>& events) {
  if (!packet.is_response) return;  // answers in a query are the asker's cache, not news
  std::map<std::string, std::uint32_t> a_records;
  for (const Record& r : packet.answers) {
    if (r.type == kTypeA && r.ttl_s != 0) a_records[r.name] = r.ipv4;
  }
  std::set<std::string> touched;
  for (const Record& r : packet.answers) {
    if (r.type == kTypePtr) {
      if (r.name == kServiceName && r.ttl_s == 0 && is_instance(r.target) &&
          r.target != self_instance_) {
        goodbye(r.target, events);
      }
      continue;
    }
    if ((r.type != kTypeSrv && r.type != kTypeTxt) || !is_instance(r.name) ||
        r.name == self_instance_) {
      continue;
    }
    if (r.ttl_s == 0) {
      goodbye(r.name, events);
      continue;
    }
    if (r.type == kTypeSrv) {
      Peer* peer = find_or_add(r.name);
      if (peer == nullptr) continue;
      peer->srv = Srv{r.port, r.target, deadline(now, r.ttl_s)};
      auto a = a_records.find(r.target);
      peer->address = dotted(a != a_records.end() ? a->second : source_ipv4);
      touched.insert(r.name);
      continue;
    }
    Result<TxtFields> fields = decode_txt(r.txt);
    if (!fields.ok() || r.name != instance_name(fields->device_id)) {
      // Refused, or naming a device whose instance is another: never reported.
      ++invalid_txt_;
      continue;
    }
    if (fields->device_id == self_device_id_) continue;
    Peer* peer = find_or_add(r.name);
    if (peer == nullptr) continue;
    peer->txt = Txt{std::move(fields).value(), deadline(now, r.ttl_s)};
    if (peer->address.empty()) peer->address = dotted(source_ipv4);
    touched.insert(r.name);
  }
  for (const std::string& instance : touched) {
    auto it = peers_.find(instance);
    if (it == peers_.end()) continue;
    Peer& peer = it->second;
    if (!peer.srv || !peer.txt) continue;
    Sighting s{peer.txt->fields.device_id, peer.txt->fields.protocol_version,
               peer.txt->fields.mesh_hash, peer.address, peer.srv->port};
    if (!peer.reported || *peer.reported != s) {
      peer.reported = s;
      events.push_back(PeerEvent{true, std::move(s)});
    }
  }
}

void PeerTable::expire(MonoTime now, std::vector<PeerEvent>& events) {
  for (auto it = peers_.begin(); it != peers_.end();) {
    Peer& peer = it->second;
    if (peer.srv && peer.srv->deadline <= now) peer.srv.reset();
    if (peer.txt && peer.txt->deadline <= now) peer.txt.reset();
    if ((!peer.srv || !peer.txt) && peer.reported) {
      events.push_back(lost_event(peer.reported->device_id));
      peer.reported.reset();
    }
    if (!peer.srv && !peer.txt) {
      it = peers_.erase(it);
    } else {
      ++it;
    }
  }
}

std::optional<MonoTime> PeerTable::next_deadline() const {
  std::optional<MonoTime> next;
  auto consider = [&next](MonoTime t) {
    if (!next || t < *next) next = t;
  };
  for (const auto& [name, peer] : peers_) {
    if (peer.srv) consider(peer.srv->deadline);
    if (peer.txt) consider(peer.txt->deadline);
  }
  return next;
}

}  // namespace shoal::transport::mdns
