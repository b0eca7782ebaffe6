/* transport/mdns_glue.c: the only file that includes libmdnsd's headers (see mdns_glue.h).
 *
 * Role: wraps one mdns_daemon_t with the records Shoal publishes, behind the C ABI of
 * mdns_glue.h. Compiled as C99 with transport/mdns_config/ first on the
 * include path, for the config.h that libmdnsd's headers include.
 * Thread rules: as mdns_glue.h (one thread per handle).
 */
#include "transport/mdns_glue.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <libmdnsd/mdnsd.h>

#define SHOAL_MDNS_CLASS_IN 1
#define SHOAL_MDNS_NAME_MAX 255
#define SHOAL_MDNS_TXT_MAX 1024
/* Zeroed bytes after the copy of a packet: libmdnsd's parser has no length, so whatever it
 * reads beyond a (canonical, hence well-formed) packet is zero: an empty name, zero counts. */
#define SHOAL_MDNS_GUARD_BYTES 1024

struct shoal_mdns {
  mdns_daemon_t* d;
  struct message* msg; /* ~70 KB: too large for the stack of a handler */
  unsigned char* in;   /* MAX_PACKET_LEN + guard */
  mdns_record_t* ptr;
  mdns_record_t* srv;
  mdns_record_t* txt;
  mdns_record_t* a;
  /* Our own copies: libmdnsd's setters free the record's old string before copying the new. */
  char service[SHOAL_MDNS_NAME_MAX + 1];
  char instance[SHOAL_MDNS_NAME_MAX + 1];
  char host[SHOAL_MDNS_NAME_MAX + 1];
  unsigned char txt_data[SHOAL_MDNS_TXT_MAX];
  unsigned short txt_len;
  unsigned short port;
  struct in_addr ipv4;
  int published;
  int shut_down;
};

shoal_mdns* shoal_mdns_new(int frame_bytes) {
  shoal_mdns* m = calloc(1, sizeof(*m));
  if (m == NULL) return NULL;
  m->msg = malloc(sizeof(struct message));
  m->in = calloc(1, MAX_PACKET_LEN + SHOAL_MDNS_GUARD_BYTES);
  m->d = mdnsd_new(SHOAL_MDNS_CLASS_IN, frame_bytes);
  if (m->msg == NULL || m->in == NULL || m->d == NULL) {
    shoal_mdns_free(m);
    return NULL;
  }
  /* libmdnsd logs to stderr at LOG_NOTICE by default; a library must stay quiet. */
  mdnsd_log_level("err");
  return m;
}

void shoal_mdns_free(shoal_mdns* m) {
  if (m == NULL) return;
  if (m->d != NULL) mdnsd_free(m->d);
  free(m->msg);
  free(m->in);
  free(m);
}

static int copy_name(char* dst, const char* src) {
  size_t n = strlen(src);
  if (n == 0 || n > SHOAL_MDNS_NAME_MAX) return -1;
  memcpy(dst, src, n + 1);
  return 0;
}

int shoal_mdns_publish(shoal_mdns* m, const char* service, const char* instance, const char* host,
                       uint16_t port, const uint8_t* txt, size_t txt_len, uint32_t ipv4_be,
                       uint32_t ttl_s) {
  if (m->published || copy_name(m->service, service) != 0 ||
      copy_name(m->instance, instance) != 0 || copy_name(m->host, host) != 0 || txt_len == 0 ||
      txt_len > SHOAL_MDNS_TXT_MAX) {
    return -1;
  }
  memcpy(m->txt_data, txt, txt_len);
  m->txt_len = (unsigned short)txt_len;
  m->port = port;
  m->ipv4.s_addr = ipv4_be;

  /* Shared records only: a unique record would make libmdnsd probe, and its probe-conflict
   * path indexes the answer array by the authority count (out of bounds on hostile input). */
  m->ptr = mdnsd_shared(m->d, m->service, QTYPE_PTR, ttl_s);
  m->srv = mdnsd_shared(m->d, m->instance, QTYPE_SRV, ttl_s);
  m->txt = mdnsd_shared(m->d, m->instance, QTYPE_TXT, ttl_s);
  if (m->ptr == NULL || m->srv == NULL || m->txt == NULL) return -1;
  if (ipv4_be != 0) {
    m->a = mdnsd_shared(m->d, m->host, QTYPE_A, ttl_s);
    if (m->a == NULL) return -1;
  }
  m->published = 1;
  shoal_mdns_announce(m);
  return 0;
}

void shoal_mdns_announce(shoal_mdns* m) {
  if (!m->published || m->shut_down) return;
  /* Setting a record's data puts it on libmdnsd's publish list. */
  mdnsd_set_host(m->d, m->ptr, m->instance);
  mdnsd_set_srv(m->d, m->srv, 0, 0, m->port, m->host);
  mdnsd_set_raw(m->d, m->txt, (const char*)m->txt_data, m->txt_len);
  if (m->a != NULL) mdnsd_set_ip(m->d, m->a, m->ipv4);
}

int shoal_mdns_query_packet(shoal_mdns* m, uint8_t* out, size_t cap) {
  int len;
  if (!m->published) return -1;
  memset(m->msg, 0, sizeof(*m->msg));
  message_qd(m->msg, m->service, QTYPE_PTR, SHOAL_MDNS_CLASS_IN);
  (void)message_packet(m->msg);
  len = message_packet_len(m->msg);
  if (len <= 0 || (size_t)len > cap) return -1;
  memcpy(out, m->msg->_packet, (size_t)len);
  return len;
}

static int parse_into(struct message* msg, unsigned char* in, const uint8_t* packet, size_t len) {
  if (len < 12 || len > MAX_PACKET_LEN) return -1;
  memcpy(in, packet, len);
  memset(in + len, 0, MAX_PACKET_LEN + SHOAL_MDNS_GUARD_BYTES - len);
  memset(msg, 0, sizeof(*msg));
  message_parse(msg, in);
  return 0;
}

int shoal_mdns_input(shoal_mdns* m, const uint8_t* packet, size_t len, uint32_t src_ipv4_be) {
  struct in_addr src;
  if (m->shut_down) return 0;
  if (parse_into(m->msg, m->in, packet, len) != 0) return -1;
  src.s_addr = src_ipv4_be;
  (void)mdnsd_in(m->d, m->msg, src, 5353);
  return 0;
}

int shoal_mdns_output(shoal_mdns* m, uint8_t* out, size_t cap) {
  struct in_addr ip;
  unsigned short port = 0;
  unsigned char* bytes;
  int len;
  ip.s_addr = 0;
  if (mdnsd_out(m->d, m->msg, &ip, &port) <= 0) return 0;
  bytes = message_packet(m->msg);
  len = message_packet_len(m->msg);
  if (ip.s_addr != inet_addr("224.0.0.251") || len <= 0 || (size_t)len > cap) return -1;
  memcpy(out, bytes, (size_t)len);
  return len;
}

long shoal_mdns_sleep_ms(shoal_mdns* m) {
  struct timeval* tv = mdnsd_sleep(m->d);
  long ms;
  if (tv == NULL) return 0;
  ms = (long)tv->tv_sec * 1000 + (long)(tv->tv_usec / 1000);
  return ms < 0 ? 0 : ms;
}

void shoal_mdns_shutdown(shoal_mdns* m) {
  if (m->shut_down) return;
  m->shut_down = 1;
  mdnsd_shutdown(m->d);
}

size_t shoal_mdns_question_scratch_bytes(void) { return sizeof(struct question); }
size_t shoal_mdns_record_scratch_bytes(void) { return sizeof(struct resource); }

static void report(const struct resource* r, shoal_mdns_record_fn on_r, void* ctx) {
  shoal_mdns_parsed_record out;
  memset(&out, 0, sizeof(out));
  out.name = r->name;
  out.type = r->type;
  out.rrclass = r->class;
  out.ttl_s = (uint32_t)r->ttl;
  out.rdata = r->rdata;
  out.rdlen = r->rdlength;
  switch (r->type) {
    case QTYPE_PTR: out.target = r->known.ptr.name; break;
    case QTYPE_SRV:
      out.target = r->known.srv.name;
      out.port = r->known.srv.port;
      break;
    default: break;
  }
  on_r(ctx, &out);
}

int shoal_mdns_parse_for_testing(const uint8_t* packet, size_t len, shoal_mdns_question_fn on_q,
                                 shoal_mdns_record_fn on_r, void* ctx, int* is_response) {
  struct message* msg = malloc(sizeof(*msg));
  unsigned char* in = malloc(MAX_PACKET_LEN + SHOAL_MDNS_GUARD_BYTES);
  int i;
  int rc = -1;
  if (msg != NULL && in != NULL && parse_into(msg, in, packet, len) == 0) {
    *is_response = msg->header.qr;
    for (i = 0; i < msg->qdcount; i++) on_q(ctx, msg->qd[i].name, msg->qd[i].type, msg->qd[i].class);
    for (i = 0; i < msg->ancount; i++) report(&msg->an[i], on_r, ctx);
    rc = 0;
  }
  free(msg);
  free(in);
  return rc;
}
