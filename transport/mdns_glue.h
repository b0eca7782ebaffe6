/* transport/mdns_glue.h: the small C ABI over libmdnsd 0.12 that the C++ discovery code uses.
 *
 * Role: libmdnsd's headers are not valid C++ (a member named `class`, no extern "C", and a
 * config.h the package does not ship), so exactly one C file, transport/mdns_glue.c, includes
 * them; everything else sees only this header. libmdnsd does the mDNS mechanics here: it keeps
 * our four records (PTR, SRV, TXT, A), answers questions for them, schedules announcements and
 * queries, and builds every packet we send, including the goodbye. It has no socket code: the
 * caller moves bytes (transport/mdns_discovery.cpp, on one Asio UDP socket).
 *
 * Input precondition: libmdnsd 0.12's packet parser (message_parse) takes no length and trusts
 * the counts, the compression pointers and the sizes in the packet. shoal_mdns_input() and
 * shoal_mdns_parse_for_testing() must therefore only ever see packets made by
 * shoal::transport::mdns::canonicalize() (transport/mdns_internal.hpp): bounded size and counts,
 * no compression pointers, no authority or additional records. The glue itself adds a zeroed
 * guard region after the copy it parses, so reading past the end reads zeros, never memory.
 *
 * Thread rules: a shoal_mdns handle belongs to one thread at a time; no globals besides
 * libmdnsd's log level. Ownership: the caller owns the handle (shoal_mdns_free) and every buffer
 * it passes; strings in callbacks are valid only during the callback.
 */
#ifndef SHOAL_TRANSPORT_MDNS_GLUE_H_
#define SHOAL_TRANSPORT_MDNS_GLUE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shoal_mdns shoal_mdns;

/* DNS record types the glue understands. */
enum {
  SHOAL_MDNS_TYPE_A = 1,
  SHOAL_MDNS_TYPE_PTR = 12,
  SHOAL_MDNS_TYPE_TXT = 16,
  SHOAL_MDNS_TYPE_SRV = 33
};

/* One record as libmdnsd parsed it (only for shoal_mdns_parse_for_testing). */
typedef struct shoal_mdns_parsed_record {
  const char* name;   /* dotted, with libmdnsd's trailing dot: "a._shoal._tcp.local." */
  uint16_t type;
  uint16_t rrclass;
  uint32_t ttl_s;
  const uint8_t* rdata; /* raw rdata of A and TXT (libmdnsd keeps none for PTR and SRV) */
  uint16_t rdlen;
  const char* target; /* PTR and SRV: the name pointed to; NULL otherwise */
  uint16_t port;      /* SRV */
} shoal_mdns_parsed_record;

typedef void (*shoal_mdns_record_fn)(void* ctx, const shoal_mdns_parsed_record* record);
typedef void (*shoal_mdns_question_fn)(void* ctx, const char* name, uint16_t type,
                                       uint16_t qclass);

/* A new responder whose packets are at most frame_bytes long. NULL when out of memory. */
shoal_mdns* shoal_mdns_new(int frame_bytes);
/* Frees the handle (NULL is fine). Call shoal_mdns_shutdown and drain output first to say
 * goodbye. */
void shoal_mdns_free(shoal_mdns* m);

/* Publishes PTR(service -> instance), SRV(instance -> host:port), TXT(instance) and, when
 * ipv4_be is not 0, A(host). Names are dotted with a trailing dot. Call once. Returns 0, or -1
 * when a name is longer than 255 bytes, the TXT is empty or longer than 1024 bytes, or memory ran
 * out. */
int shoal_mdns_publish(shoal_mdns* m, const char* service, const char* instance, const char* host,
                       uint16_t port, const uint8_t* txt, size_t txt_len, uint32_t ipv4_be,
                       uint32_t ttl_s);
/* Announces every published record again (libmdnsd sends them at once and three more times,
 * two seconds apart). */
void shoal_mdns_announce(shoal_mdns* m);
/* Builds a query packet asking for the service's PTR records into out. Returns its length, or -1
 * when cap is too small or nothing is published. We ask with these rather than registering a
 * libmdnsd query: libmdnsd 0.12 crashes when a query is removed (its _q_done looks in the wrong
 * hash bucket), and the known answers it adds to its own retries are malformed (a PTR record
 * with four address bytes before the name). */
int shoal_mdns_query_packet(shoal_mdns* m, uint8_t* out, size_t cap);

/* Hands one canonical query (see the precondition above) from src_ipv4_be to libmdnsd, which
 * queues answers to its questions. Responses are not for libmdnsd: it would cache every answer
 * (one entry per copy heard, expired only by a daily sweep when no query of its own is
 * registered), and the discovery code reads responses itself. The source port is always taken as 5353, so
 * libmdnsd never queues a unicast reply (we answer by multicast only; a spoofed legacy query
 * cannot turn us into a reflector). Returns 0, -1 when len exceeds the glue's bound (65535). */
int shoal_mdns_input(shoal_mdns* m, const uint8_t* packet, size_t len, uint32_t src_ipv4_be);

/* The next packet to multicast to 224.0.0.251:5353, copied into out. Returns its length, 0 when
 * nothing is due, or -1 when a packet was produced but skipped (larger than cap, or addressed
 * anywhere but the group): call again. */
int shoal_mdns_output(shoal_mdns* m, uint8_t* out, size_t cap);
/* Milliseconds until shoal_mdns_output should be called again (0: now). */
long shoal_mdns_sleep_ms(shoal_mdns* m);
/* Sets every published record's TTL to 0 and queues them: the next output is the goodbye.
 * Input is ignored from then on. */
void shoal_mdns_shutdown(shoal_mdns* m);

/* Scratch bytes libmdnsd's parser takes per question and per resource record, out of the 4096
 * it allows for everything a packet's names need (its _label() refuses names past that). */
size_t shoal_mdns_question_scratch_bytes(void);
size_t shoal_mdns_record_scratch_bytes(void);

/* Parses a canonical packet with libmdnsd's parser only and reports what it saw (for the
 * fuzzer's and the tests' comparison with our own parse). Returns 0 or -1 as input does. */
int shoal_mdns_parse_for_testing(const uint8_t* packet, size_t len, shoal_mdns_question_fn on_q,
                                 shoal_mdns_record_fn on_r, void* ctx, int* is_response);

#ifdef __cplusplus
}
#endif

#endif /* SHOAL_TRANSPORT_MDNS_GLUE_H_ */
