/* Users of a proxy: secret references resolved into credentials, and rotation.
 *
 * Secrets are resolved on the worker's loop (a small file read). File secrets are stat()ed at most
 * once a second per user, at login time, and re-read when their modification time changes, so a
 * rotated password is used by the next login without a restart; sessions already authenticated keep
 * working, and backends already open stay logged in. */
#include <string.h>
#include <sys/stat.h>

#include "base/log.h"
#include "pool/internal.h"

static int file_mtime(const char *ref, struct timespec *out)
{
    struct stat st;
    if (strncmp(ref, "file:", 5) != 0)
        return -1;
    if (stat(ref + 5, &st) != 0)
        return -1;
    *out = st.st_mtim;
    return 0;
}

int sl_user_refresh(struct sl_worker *w, struct sl_user *u)
{
    double now = sl_now(w);
    if (u->resolved && now - u->checked_at < 1.0)
        return 0;
    u->checked_at = now;
    struct timespec mt = {0, 0};
    bool is_file = file_mtime(u->cfg.secret, &mt) == 0;
    if (u->resolved && (!is_file || (mt.tv_sec == u->secret_mtime.tv_sec &&
                                     mt.tv_nsec == u->secret_mtime.tv_nsec)))
        return 0;

    struct sl_secret fresh;
    char err[256];
    if (sl_secret_resolve(u->cfg.secret, &fresh, err, sizeof err) != 0) {
        sl_secret_wipe(&fresh);
        /* Keep serving with the last good credentials: a half-written rotation must not lock
         * everyone out. */
        sl_warn(0, "cannot resolve secret %s: %s%s", u->cfg.secret, err,
                u->resolved ? " (keeping the previous credentials)" : "");
        return u->resolved ? 0 : -1;
    }
    bool rotated = u->resolved && (strcmp(fresh.username, u->secret.username) != 0 ||
                                   fresh.password_len != u->secret.password_len ||
                                   memcmp(fresh.password, u->secret.password, fresh.password_len));
    sl_secret_wipe(&u->secret);
    u->secret = fresh;
    sl_secret_wipe(&fresh);
    u->secret_mtime = mt;
    if (rotated) {
        u->sha2_cached = false;
        sl_info(0, "secret %s rotated for user %s", u->cfg.secret, u->secret.username);
    }
    u->resolved = true;
    return 0;
}

struct sl_user *sl_user_find(struct sl_proxy *p, const char *name, size_t len)
{
    for (size_t i = 0; i < p->n_users; i++) {
        struct sl_user *u = p->users[i];
        if (u->removed)
            continue;
        sl_user_refresh(p->worker, u);
        if (u->resolved && strlen(u->secret.username) == len &&
            memcmp(u->secret.username, name, len) == 0)
            return u;
    }
    return NULL;
}
