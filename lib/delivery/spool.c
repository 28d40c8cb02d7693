/* lib/delivery spool.c: a message on its way in, in a file.
 *
 * Design notes
 * - The file is made with O_TMPFILE in DATA/spool: it has no name, so a
 *   crash or a kill leaves nothing to clean up. Where the file system
 *   cannot do O_TMPFILE we fall back to mkstemp() and unlink at once.
 *   The spool is never fsynced: it only has to live until the store has
 *   made its own durable copy, and a crash before that means the client
 *   was never told "250".
 * - Writes go through a 64 KiB buffer: the SMTP engine hands out chunks
 *   as small as one line, and one write(2) per line would cost more than
 *   the parsing.
 * - CRLF becomes LF (the Maildir convention, as Postfix and Dovecot
 *   store), also when CR and LF come in different chunks (pending_cr).
 *   A lone CR is kept as it is (the SMTP engine refuses those anyway;
 *   mh-deliver's input is passed through).
 * - A first line "From sender date" is an mbox envelope line (fetchmail
 *   and procmail may pass one); it is not a header, so it is dropped.
 *   Deciding needs the first five bytes, kept in head[] until known.
 * - The size limit counts bytes after conversion and fails the write
 *   that passes it, so a stream that never ends costs at most the limit
 *   in disk space.
 * - States: HEAD (first bytes unknown) -> SKIP (inside a "From " line)
 *   or BODY; any failure -> FAILED (only unref does anything).
 * - Files are reused (issue 6, perf): making an O_TMPFILE costs an inode
 *   allocation and freeing it at close, and ext4's search for a free
 *   inode past the recently deleted ones (find_inode_bit,
 *   recently_deleted) was ~40% of mh-lmtpd's CPU, on the main loop. So
 *   the last unref resets the spool and hands it to its MhDelivery's
 *   pool, and mh_delivery_spool_new() takes from there first. A reused
 *   file is overwritten from offset 0 (pwrite: no seek) and cut to the
 *   new message's length at finish only when the old one was longer, so
 *   fstat() and readers always see exactly this message; a file that
 *   grew past POOL_KEEP_MAX is dropped instead of pooled, so an idle
 *   pool holds little disk space. A spool is unnamed and private to the
 *   process, so what it held before is nobody else's to see.
 */
#include "delivery-private.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

#define SPOOL_BUF (64 * 1024)
#define POOL_KEEP_MAX (1024 * 1024)

typedef enum
{
  SPOOL_HEAD,
  SPOOL_SKIP,
  SPOOL_BODY,
  SPOOL_FINISHED,
  SPOOL_FAILED,
} SpoolState;

struct _MhDeliverySpool
{
  gint refcount;
  MhDelivery *d; /* a ref while in use, for the pool; NULL when idle */
  int fd;
  guint64 written;  /* file offset of the next flush */
  guint64 file_len; /* the file's length (a reused file may be longer) */
  SpoolState state;
  guint8 head[5];
  gsize head_len;
  gboolean pending_cr;
  guint8 *buf;
  gsize buf_len;
  guint64 size;      /* bytes handed to the buffer (after conversion) */
  guint64 max;
  char *dir;         /* for messages */
};

G_DEFINE_BOXED_TYPE (MhDeliverySpool, mh_delivery_spool,
                     mh_delivery_spool_ref, mh_delivery_spool_unref)

static gboolean
spool_fail (MhDeliverySpool *s, GError **error, int code, const char *fmt,
            ...) G_GNUC_PRINTF (4, 5);

static gboolean
spool_fail (MhDeliverySpool *s, GError **error, int code, const char *fmt,
            ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  s->state = SPOOL_FAILED;
  g_set_error_literal (error, MH_DELIVERY_ERROR, code, msg);
  return FALSE;
}

MhDeliverySpool *
mh_delivery_spool_new (MhDelivery *d, GError **error)
{
  g_return_val_if_fail (d != NULL, NULL);
  MhDeliverySpool *s = mh_delivery__spool_take (d);
  if (s != NULL)
    {
      /* reset by the unref that pooled it */
      s->refcount = 1;
      s->d = mh_delivery_ref (d);
      s->max = mh_delivery__spool_max (d);
      return s;
    }
  const char *dir = mh_delivery__spool_dir (d);
  int fd = open (dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL))
    {
      g_autofree char *tmpl = g_build_filename (dir, "spool.XXXXXX", NULL);
      fd = g_mkstemp_full (tmpl, O_RDWR | O_CLOEXEC, 0600);
      if (fd >= 0)
        g_unlink (tmpl);
    }
  if (fd < 0)
    {
      int e = errno;
      g_set_error (error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_SPOOL,
                   "cannot create a spool file in %s: %s", dir,
                   g_strerror (e));
      return NULL;
    }
  s = g_new0 (MhDeliverySpool, 1);
  s->refcount = 1;
  s->d = mh_delivery_ref (d);
  s->fd = fd;
  s->state = SPOOL_HEAD;
  s->buf = g_malloc (SPOOL_BUF);
  s->max = mh_delivery__spool_max (d);
  s->dir = g_strdup (dir);
  return s;
}

MhDeliverySpool *
mh_delivery_spool_ref (MhDeliverySpool *spool)
{
  g_return_val_if_fail (spool != NULL, NULL);
  g_atomic_int_inc (&spool->refcount);
  return spool;
}

void
mh_delivery__spool_destroy (MhDeliverySpool *s)
{
  if (s->fd >= 0)
    close (s->fd);
  g_free (s->buf);
  g_free (s->dir);
  g_free (s);
}

void
mh_delivery_spool_unref (MhDeliverySpool *spool)
{
  if (spool == NULL || !g_atomic_int_dec_and_test (&spool->refcount))
    return;
  MhDelivery *d = g_steal_pointer (&spool->d);
  /* Back to the pool, as new: same file, same buffer. */
  if (spool->file_len <= POOL_KEEP_MAX)
    {
      spool->state = SPOOL_HEAD;
      spool->head_len = 0;
      spool->pending_cr = FALSE;
      spool->buf_len = 0;
      spool->size = 0;
      spool->written = 0;
      if (mh_delivery__spool_give (d, spool))
        spool = NULL;
    }
  if (spool != NULL)
    mh_delivery__spool_destroy (spool);
  mh_delivery_unref (d); /* may free the pool, this spool with it */
}

static gboolean
flush (MhDeliverySpool *s, GError **error)
{
  gsize off = 0;
  while (off < s->buf_len)
    {
      ssize_t n = pwrite (s->fd, s->buf + off, s->buf_len - off,
                          (off_t)(s->written + off));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          int e = n < 0 ? errno : EIO;
          /* a partial write leaves the length unknown: never pool it */
          s->file_len = G_MAXUINT64;
          return spool_fail (s, error, MH_DELIVERY_ERROR_SPOOL,
                             "cannot write the spool file in %s: %s", s->dir,
                             g_strerror (e));
        }
      off += (gsize) n;
    }
  s->written += s->buf_len;
  s->file_len = MAX (s->file_len, s->written);
  s->buf_len = 0;
  return TRUE;
}

static gboolean
emit (MhDeliverySpool *s, const guint8 *p, gsize n, GError **error)
{
  if (s->size + n > s->max)
    return spool_fail (s, error, MH_DELIVERY_ERROR_TOO_BIG,
                       "message larger than the limit of %" G_GUINT64_FORMAT
                       " bytes", s->max);
  s->size += n;
  while (n > 0)
    {
      gsize room = SPOOL_BUF - s->buf_len;
      gsize take = MIN (room, n);
      memcpy (s->buf + s->buf_len, p, take);
      s->buf_len += take;
      p += take;
      n -= take;
      if (s->buf_len == SPOOL_BUF && !flush (s, error))
        return FALSE;
    }
  return TRUE;
}

/* CRLF -> LF over the body; memchr keeps the common case (no CR, or
 * one per line) at memcpy speed. */
static gboolean
body (MhDeliverySpool *s, const guint8 *p, gsize n, GError **error)
{
  while (n > 0)
    {
      if (s->pending_cr)
        {
          s->pending_cr = FALSE;
          if (p[0] == '\n')
            {
              if (!emit (s, (const guint8 *) "\n", 1, error))
                return FALSE;
              p++;
              n--;
              continue;
            }
          if (!emit (s, (const guint8 *) "\r", 1, error))
            return FALSE;
        }
      const guint8 *cr = memchr (p, '\r', n);
      gsize upto = cr ? (gsize) (cr - p) : n;
      if (upto > 0 && !emit (s, p, upto, error))
        return FALSE;
      if (cr == NULL)
        return TRUE;
      p += upto + 1;
      n -= upto + 1;
      s->pending_cr = TRUE;
    }
  return TRUE;
}

gboolean
mh_delivery_spool_write (MhDeliverySpool *spool, const guint8 *data,
                         gsize len, GError **error)
{
  g_return_val_if_fail (spool != NULL, FALSE);
  MhDeliverySpool *s = spool;
  if (s->state == SPOOL_FAILED || s->state == SPOOL_FINISHED)
    {
      g_set_error_literal (error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_SPOOL,
                           "the spool is finished or failed");
      return FALSE;
    }
  while (len > 0)
    {
      if (s->state == SPOOL_HEAD)
        {
          gsize take = MIN (len, sizeof s->head - s->head_len);
          memcpy (s->head + s->head_len, data, take);
          s->head_len += take;
          data += take;
          len -= take;
          if (s->head_len < sizeof s->head)
            return TRUE;
          if (memcmp (s->head, "From ", 5) == 0)
            s->state = SPOOL_SKIP;
          else
            {
              s->state = SPOOL_BODY;
              if (!body (s, s->head, s->head_len, error))
                return FALSE;
            }
          continue;
        }
      if (s->state == SPOOL_SKIP)
        {
          const guint8 *nl = memchr (data, '\n', len);
          if (nl == NULL)
            return TRUE;
          len -= (gsize) (nl + 1 - data);
          data = nl + 1;
          s->state = SPOOL_BODY;
          continue;
        }
      return body (s, data, len, error);
    }
  return TRUE;
}

gboolean
mh_delivery_spool_write_fd (MhDeliverySpool *spool, int fd, GError **error)
{
  g_return_val_if_fail (spool != NULL, FALSE);
  g_autofree guint8 *buf = g_malloc (SPOOL_BUF);
  for (;;)
    {
      ssize_t n = read (fd, buf, SPOOL_BUF);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          int e = errno;
          return spool_fail (spool, error, MH_DELIVERY_ERROR_SPOOL,
                             "cannot read the message: %s", g_strerror (e));
        }
      if (n == 0)
        return TRUE;
      if (!mh_delivery_spool_write (spool, buf, (gsize) n, error))
        return FALSE;
    }
}

gboolean
mh_delivery_spool_finish (MhDeliverySpool *spool, GError **error)
{
  g_return_val_if_fail (spool != NULL, FALSE);
  MhDeliverySpool *s = spool;
  if (s->state == SPOOL_FINISHED)
    return TRUE;
  if (s->state == SPOOL_FAILED)
    {
      g_set_error_literal (error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_SPOOL,
                           "the spool failed earlier");
      return FALSE;
    }
  if (s->state == SPOOL_HEAD && s->head_len > 0)
    {
      /* shorter than "From ": just data */
      s->state = SPOOL_BODY;
      if (!body (s, s->head, s->head_len, error))
        return FALSE;
    }
  if (s->pending_cr)
    {
      s->pending_cr = FALSE;
      if (!emit (s, (const guint8 *) "\r", 1, error))
        return FALSE;
    }
  if (!flush (s, error))
    return FALSE;
  /* a reused file: cut off the longer message it held before */
  if (s->file_len > s->written)
    {
      if (ftruncate (s->fd, (off_t)s->written) != 0)
        {
          int e = errno;
          return spool_fail (s, error, MH_DELIVERY_ERROR_SPOOL,
                             "cannot truncate the spool file in %s: %s", s->dir,
                             g_strerror (e));
        }
      s->file_len = s->written;
    }
  s->state = SPOOL_FINISHED;
  return TRUE;
}

guint64
mh_delivery_spool_get_size (MhDeliverySpool *spool)
{
  g_return_val_if_fail (spool != NULL, 0);
  return spool->size;
}

int
mh_delivery_spool_get_fd (MhDeliverySpool *spool)
{
  g_return_val_if_fail (spool != NULL, -1);
  return spool->fd;
}
