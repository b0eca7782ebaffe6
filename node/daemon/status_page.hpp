// node/daemon/status_page.hpp: the daemon's status page (GET /) and its JSON twin
// (GET /status.json), rendered from a DaemonSnapshot (status.hpp).
//
// Role: presentation only. The page is one self-contained HTML document: inline CSS, an inline
// SVG picture of the mesh, no script, no external resource (the server sends a
// Content-Security-Policy that forbids loading any). The picture puts this node in the middle,
// hot peers on the inner ring (orange) and warm peers on the outer ring (blue); a solid line is an
// up link, a dashed grey line a partitioned peer (its node drawn hollow); each peer is labelled
// with its device label, its lag (entries and seconds) and its last contact.
// Safety: every string from the snapshot (peer labels, addresses, roles, collection names,
// handshake reasons) is escaped for HTML text and attribute context, after invalid UTF-8 and
// control characters are replaced with U+FFFD, so a hostile peer name cannot add markup.
// Thread rules: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "node/daemon/status.hpp"

namespace shoal::daemon {

// The whole status page (UTF-8 HTML; serve it as `text/html; charset=utf-8`).
std::string render_status_page(const DaemonSnapshot& snapshot);

// The snapshot as one JSON object (UTF-8; every field of DaemonSnapshot under its own name,
// `tier` as "hot"/"warm", `partitioned` added per peer, absent optionals as null).
std::string render_status_json(const DaemonSnapshot& snapshot);

// `text` with invalid UTF-8 sequences and C0/DEL control characters other than tab and newline
// replaced by U+FFFD.
std::string valid_utf8(std::string_view text);

// valid_utf8(text) with & < > " ' escaped: safe in HTML and SVG text and in quoted attributes.
std::string html_escape(std::string_view text);

}  // namespace shoal::daemon
