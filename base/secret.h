/* Secret references: where a credential lives, never the credential itself.
 *
 *   file:/abs/path.json   JSON shaped like an RDS / Secrets Manager secret:
 *                         {"username": "...", "password": "...", "engine": "mariadb",
 *                          "host": "...", "port": 3306}   (engine, host, port optional)
 *   env:NAME              the environment variable NAME holds that same JSON document
 *
 * Resolved secrets live only in memory; callers must wipe them (sl_secret_wipe) when done and must
 * never log, print or serialise the password. */
#ifndef SL_BASE_SECRET_H
#define SL_BASE_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_SECRET_USER_MAX     128
#define SL_SECRET_PASSWORD_MAX 1024

struct sl_secret {
    char username[SL_SECRET_USER_MAX + 1];
    char password[SL_SECRET_PASSWORD_MAX + 1];
    size_t password_len;
    char host[256]; /* "" when absent */
    uint16_t port;  /* 0 when absent */
};

/* Pure: whether ref is a well-formed reference: "file:" and an absolute path other than "/" with no
 * control characters, or "env:" and a name matching [A-Za-z_][A-Za-z0-9_]*. */
bool sl_secret_ref_valid(const char *ref);

/* Pure: parse a secret document. Returns 0, or -1 with a reason in err that never contains any
 * part of the document's values (only field names). */
int sl_secret_parse(const char *json, size_t len, struct sl_secret *out, char *err, size_t errlen);

/* Resolve a reference ("file:..." or "env:..."). Same contract as sl_secret_parse; unknown schemes,
 * missing files and unset variables are errors naming the reference. */
int sl_secret_resolve(const char *ref, struct sl_secret *out, char *err, size_t errlen);

/* Resolve a reference to a bare token (the admin API's bearer token): the whole file, or the
 * variable's value, without surrounding whitespace. It must be 16..512 printable ASCII characters.
 * Returns 0, or -1 with a reason in err that never contains the token. */
#define SL_TOKEN_MAX 512
int sl_secret_resolve_token(const char *ref, char *out, size_t cap, char *err, size_t errlen);

/* Overwrite the secret's memory so the password does not linger. */
void sl_secret_wipe(struct sl_secret *s);

#endif
