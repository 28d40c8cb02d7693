/* libmailhost: every default limit in one place.
 *
 * Engines and layers take a limits struct whose fields default (when 0)
 * to these values; the config file can override most of them (see
 * docs/config.md). Keeping the numbers together makes it easy to see
 * what a stranger on the network can make us spend.
 */
#pragma once

/* Names and addresses (RFC 5321 4.5.3.1, RFC 1035 2.3.4). */
#define MH_LIMIT_DOMAIN_MAX          253   /* octets, A-label form */
#define MH_LIMIT_DOMAIN_LABEL_MAX    63
#define MH_LIMIT_LOCAL_PART_MAX      64
#define MH_LIMIT_ADDRESS_MAX         254
#define MH_LIMIT_DISPLAY_NAME_MAX    256
#define MH_LIMIT_PASSWORD_MAX        1024  /* bytes; longer is refused */
#define MH_LIMIT_ALIAS_TARGETS_MAX   1000  /* targets of one alias */

/* Connections (lib/server). */
#define MH_LIMIT_CONNECTIONS_TOTAL   1000
#define MH_LIMIT_CONNECTIONS_PER_IP  50
#define MH_LIMIT_IDLE_TIMEOUT_S      1800  /* IMAP's 30 min autologout floor */
#define MH_LIMIT_COMMAND_TIMEOUT_S   300   /* RFC 5321 4.5.3.2: 5 min */
#define MH_LIMIT_TLS_HANDSHAKE_S     30
#define MH_LIMIT_SHUTDOWN_GRACE_S    30    /* in-flight work on SIGTERM */
#define MH_LIMIT_WORKER_THREADS      8     /* blocking disk work */
#define MH_LIMIT_OUTPUT_BUFFER       (4 * 1024 * 1024) /* unsent bytes */

/* Authentication (lib/auth). */
#define MH_LIMIT_SASL_LINE_MAX       8192  /* base64 SASL response */
#define MH_LIMIT_AUTH_FAILS_FREE     3     /* failures before delays */
#define MH_LIMIT_AUTH_DELAY_MAX_MS   15000 /* cap of the growing delay */
#define MH_LIMIT_AUTH_FORGET_S       900   /* failures forgotten after */
#define MH_LIMIT_AUTH_TRACKED        65536 /* IPs/accounts remembered */
#define MH_LIMIT_SASL_ID_MAX         255   /* authcid/authzid, RFC 4616 2 */
#define MH_LIMIT_SASL_STEPS_MAX      8     /* challenges in one exchange */
#define MH_LIMIT_AUTH_DELAY_BASE_MS  500   /* first delay; then doubles */
#define MH_LIMIT_AUTH_GOOD_NETS      4     /* known-good networks/account */
#define MH_LIMIT_AUTH_GOOD_REMEMBER_S (30 * 86400) /* known-good kept for */

/* Protocols (lib/proto). */
#define MH_LIMIT_SMTP_LINE_MAX       1000  /* RFC 5321 4.5.3.1.6, with CRLF */
#define MH_LIMIT_SMTP_RCPTS_MAX      100
#define MH_LIMIT_MESSAGE_SIZE_MAX    (20 * 1024 * 1024)
#define MH_LIMIT_SMTP_DATA_LINE_MAX  1000  /* RFC 5321 4.5.3.1.6, with CRLF */
#define MH_LIMIT_SMTP_ERRORS_MAX     20    /* 4xx/5xx replies, then 421 */
#define MH_LIMIT_SMTP_BAD_COMMANDS_MAX 10  /* unknown/invalid commands */
#define MH_LIMIT_SMTP_JUNK_COMMANDS_MAX 100 /* NOOP/RSET/VRFY/HELP */
#define MH_LIMIT_IMAP_LINE_MAX       (64 * 1024)
#define MH_LIMIT_IMAP_LITERAL_MAX    (64 * 1024 * 1024)
#define MH_LIMIT_IMAP_APPEND_MAX     (64 * 1024 * 1024) /* APPENDLIMIT */
#define MH_LIMIT_IMAP_NONAPPEND_LITERAL_MAX (64 * 1024) /* other literals */
#define MH_LIMIT_IMAP_COMMAND_MAX    (256 * 1024) /* one command, literals in */
#define MH_LIMIT_IMAP_PENDING_MAX    16    /* parsed, not yet run */
#define MH_LIMIT_IMAP_BAD_MAX        20    /* BAD replies, then BYE */
#define MH_LIMIT_IMAP_LITERAL_MINUS  4096  /* LITERAL- non-sync bound */
#define MH_LIMIT_IMAP_METADATA_VALUE_MAX (64 * 1024) /* one METADATA value */
#define MH_LIMIT_IMAP_METADATA_ENTRY_MAX 1024 /* bytes of an entry name */
#define MH_LIMIT_IMAP_METADATA_ENTRIES_MAX 512 /* entries per account */
#define MH_LIMIT_IMAP_METADATA_TOTAL_MAX (1024 * 1024) /* bytes per account */

/* Config files. */
#define MH_LIMIT_CONFIG_FILE_MAX     (1024 * 1024)

/* Store (lib/store). */
#define MH_LIMIT_STORE_FOLDER_NAME_MAX 250  /* bytes of the on-disk name */
#define MH_LIMIT_STORE_FOLDER_DEPTH_MAX 16  /* levels of '.' hierarchy */
#define MH_LIMIT_STORE_KEYWORDS_MAX  26    /* per folder: dovecot-keywords a-z */
#define MH_LIMIT_STORE_KEYWORD_MAX   128   /* bytes of one keyword */
#define MH_LIMIT_STORE_BATCH_MAX     256   /* deliveries per group commit */
#define MH_LIMIT_STORE_INDEX_MAP     ((gsize) 4 << 30) /* LMDB map per account */
#define MH_LIMIT_STORE_MIME_DEPTH    32    /* MIME nesting in the cache */
#define MH_LIMIT_STORE_RESERVE      4096  /* UIDs/MODSEQs per durable reservation */

/* Address resolution (lib/resolve, docs/resolve.md). */
#define MH_LIMIT_RESOLVE_DEPTH_MAX   8     /* alias hops followed */
#define MH_LIMIT_RESOLVE_FANOUT_MAX  500   /* targets of one address */
#define MH_LIMIT_RESOLVE_GROUP_MAX   5000  /* accounts a group reaches */
#define MH_LIMIT_RESOLVE_STEPS_MAX   4096  /* rules looked at, in total */
#define MH_LIMIT_FORWARD_TARGETS_MAX 16    /* forward_to of one account */
#define MH_LIMIT_GROUP_NAMES_MAX     8     /* group_addresses of a domain */
#define MH_LIMIT_TEMP_ALIAS_DAYS     365   /* default life of a temp alias */
#define MH_LIMIT_TEMP_ALIAS_DAYS_MAX 3650  /* longest --days accepted */
