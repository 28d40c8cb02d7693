/* lib/quota maildirsize: the Maildir++ quota file other tools read.
 *
 * Design notes
 * - Format (Maildir++ quota spec, Courier maildirquota; Dovecot's maildir
 *   quota backend reads and writes the same): the first line is the
 *   quota, "<bytes>S,<count>C" (either part may be missing; "0S" when
 *   there is no limit, so the line is never empty); every other line is
 *   "<bytes> <count>", a change or, after a recalculation, the total. The
 *   usage is the sum of those lines. We write lines exactly as Dovecot
 *   does ("1234 1", "-1234 -1"), and read signs and runs of blanks too.
 * - Appends are one write(2) with O_APPEND, as the spec asks. The file is
 *   written again (temporary file + rename, never truncated in place)
 *   when it is missing, malformed, larger than 5120 bytes, carries other
 *   limits than ours, or says "over quota" while it has more than one
 *   line or is older than 15 minutes (the spec's rule; Dovecot follows
 *   it too).
 * - We bring the file to the usage our index knows, not to the sum of
 *   our own operations: each sync appends (our usage - the file's sum).
 *   So a change another Maildir++ writer (Dovecot) already appended is
 *   never counted twice, and the file converges to the index whatever
 *   happened between two syncs.
 * - A partial last line (a writer died mid-append) is ignored, as Dovecot
 *   does; a NUL byte or an unparsable line makes the file invalid.
 * - No fsync: the file is derived data that any reader recalculates.
 */
#include "quota-private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *
mh_quota__maildirsize_header (guint64 bytes_limit, guint64 messages_limit)
{
  GString *s = g_string_new (NULL);
  if (bytes_limit != 0 || messages_limit == 0)
    g_string_append_printf (s, "%" G_GUINT64_FORMAT "S", bytes_limit);
  if (messages_limit != 0)
    g_string_append_printf (s, "%s%" G_GUINT64_FORMAT "C",
                            s->len ? "," : "", messages_limit);
  return g_string_free (s, FALSE);
}

/* "1000S,50C": FALSE on anything else. */
static gboolean
parse_limits (const char *line, gsize len, guint64 *bytes, guint64 *count)
{
  *bytes = *count = 0;
  g_autofree char *copy = g_strndup (line, len);
  g_auto (GStrv) parts = g_strsplit (copy, ",", -1);
  for (guint i = 0; parts[i]; i++)
    {
      char *p = g_strstrip (parts[i]);
      gsize n = strlen (p);
      if (n < 2)
        return FALSE;
      char kind = p[n - 1];
      p[n - 1] = '\0';
      guint64 v;
      if (!g_ascii_string_to_unsigned (p, 10, 0, G_MAXINT64, &v, NULL))
        return FALSE;
      if (kind == 'S')
        *bytes = v;
      else if (kind == 'C')
        *count = v;
      else
        return FALSE;
    }
  return TRUE;
}

/* One signed integer of a usage line; *p moves past it. */
static gboolean
parse_int (const char **p, const char *end, gint64 *out)
{
  const char *s = *p;
  while (s < end && (*s == ' ' || *s == '\t'))
    s++;
  gboolean neg = FALSE;
  if (s < end && (*s == '+' || *s == '-'))
    neg = *s++ == '-';
  if (s == end || !g_ascii_isdigit (*s))
    return FALSE;
  guint64 v = 0;
  while (s < end && g_ascii_isdigit (*s))
    {
      if (v > (guint64) (G_MAXINT64 / 10 - 1))
        return FALSE;
      v = v * 10 + (guint64) (*s++ - '0');
    }
  *out = neg ? -(gint64) v : (gint64) v;
  *p = s;
  return TRUE;
}

void
mh_quota__maildirsize_parse (const char *data, gsize len, MhMaildirsize *out)
{
  memset (out, 0, sizeof *out);
  out->size = len;
  if (len == 0 || memchr (data, '\0', len) != NULL)
    return;
  /* Only whole lines count: drop a partial last line. */
  while (len > 0 && data[len - 1] != '\n')
    len--;
  const char *nl = memchr (data, '\n', len);
  if (nl == NULL)
    return;
  if (!parse_limits (data, (gsize) (nl - data), &out->bytes_limit,
                     &out->messages_limit))
    return;
  const char *p = nl + 1, *end = data + len;
  gint64 bytes = 0, messages = 0;
  while (p < end)
    {
      const char *eol = memchr (p, '\n', (gsize) (end - p));
      gint64 b, m;
      const char *q = p;
      if (!parse_int (&q, eol, &b) || !parse_int (&q, eol, &m))
        return;
      while (q < eol && (*q == ' ' || *q == '\t' || *q == '\r'))
        q++;
      if (q != eol)
        return;
      /* Sums past gint64 are corruption, not usage. */
      if ((b > 0 && bytes > G_MAXINT64 - b)
          || (b < 0 && bytes < G_MININT64 - b))
        return;
      bytes += b;
      messages += m;
      out->lines++;
      p = eol + 1;
    }
  if (bytes < 0 || messages < 0)
    return;
  out->bytes = bytes;
  out->messages = messages;
  out->valid = TRUE;
}

static char *
file_path (const char *maildir)
{
  return g_build_filename (maildir, "maildirsize", NULL);
}

gboolean
mh_quota__maildirsize_read (const char *maildir, MhMaildirsize *out,
                            GError **error)
{
  memset (out, 0, sizeof *out);
  g_autofree char *path = file_path (maildir);
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    {
      if (errno == ENOENT)
        return TRUE;
      int e = errno;
      g_set_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_IO,
                   "cannot open %s: %s", path, g_strerror (e));
      return FALSE;
    }
  /* One byte more than the limit tells "too big" without reading it all. */
  char buf[MH_QUOTA__MAILDIRSIZE_MAX + 1];
  gsize len = 0;
  while (len < sizeof buf)
    {
      ssize_t r = read (fd, buf + len, sizeof buf - len);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        {
          int e = errno;
          close (fd);
          g_set_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_IO,
                       "cannot read %s: %s", path, g_strerror (e));
          return FALSE;
        }
      if (r == 0)
        break;
      len += (gsize) r;
    }
  struct stat st;
  gint64 mtime = fstat (fd, &st) == 0 ? (gint64) st.st_mtime : 0;
  close (fd);
  mh_quota__maildirsize_parse (buf, len, out);
  out->mtime = mtime;
  if (len > MH_QUOTA__MAILDIRSIZE_MAX)
    out->size = len;   /* at least this big: rewrite */
  return TRUE;
}

gboolean
mh_quota__maildirsize_write (const char *maildir, guint64 bytes_limit,
                             guint64 messages_limit, guint64 bytes,
                             guint64 messages, GError **error)
{
  g_autofree char *path = file_path (maildir);
  g_autofree char *tmp = g_strconcat (path, ".XXXXXX", NULL);
  g_autofree char *header = mh_quota__maildirsize_header (bytes_limit,
                                                          messages_limit);
  g_autofree char *text = g_strdup_printf ("%s\n%" G_GUINT64_FORMAT " %"
                                           G_GUINT64_FORMAT "\n", header,
                                           bytes, messages);
  int fd = g_mkstemp_full (tmp, O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0)
    {
      int e = errno;
      g_set_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_IO,
                   "cannot create %s: %s", tmp, g_strerror (e));
      return FALSE;
    }
  gsize len = strlen (text), done = 0;
  while (done < len)
    {
      ssize_t w = write (fd, text + done, len - done);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        {
          int e = errno;
          close (fd);
          unlink (tmp);
          g_set_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_IO,
                       "cannot write %s: %s", tmp, g_strerror (e));
          return FALSE;
        }
      done += (gsize) w;
    }
  close (fd);
  if (rename (tmp, path) != 0)
    {
      int e = errno;
      unlink (tmp);
      g_set_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_IO,
                   "cannot rename %s to %s: %s", tmp, path, g_strerror (e));
      return FALSE;
    }
  return TRUE;
}

gboolean
mh_quota__maildirsize_append (const char *maildir, gint64 bytes,
                              gint64 messages, GError **error)
{
  g_autofree char *path = file_path (maildir);
  char line[64];
  int n = g_snprintf (line, sizeof line, "%" G_GINT64_FORMAT " %"
                      G_GINT64_FORMAT "\n", bytes, messages);
  int fd = open (path, O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0)
    {
      int e = errno;
      g_set_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_IO,
                   "cannot open %s: %s", path, g_strerror (e));
      return FALSE;
    }
  ssize_t w;
  do
    w = write (fd, line, (size_t) n);
  while (w < 0 && errno == EINTR);
  int e = errno;
  close (fd);
  if (w != n)
    {
      g_set_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_IO,
                   "cannot append to %s: %s", path,
                   w < 0 ? g_strerror (e) : "short write");
      return FALSE;
    }
  return TRUE;
}

gboolean
mh_quota__maildirsize_sync (const char *maildir, guint64 bytes_limit,
                            guint64 messages_limit, guint64 bytes,
                            guint64 messages, gint64 now, GError **error)
{
  if (!g_file_test (maildir, G_FILE_TEST_IS_DIR))
    return TRUE;
  MhMaildirsize m;
  if (!mh_quota__maildirsize_read (maildir, &m, error))
    return FALSE;
  gboolean over = m.valid
                  && ((m.bytes_limit && (guint64) m.bytes > m.bytes_limit)
                      || (m.messages_limit
                          && (guint64) m.messages > m.messages_limit));
  gboolean rewrite = !m.valid || m.size > MH_QUOTA__MAILDIRSIZE_MAX
                     || m.bytes_limit != bytes_limit
                     || m.messages_limit != messages_limit
                     || (over && (m.lines > 1
                                  || m.mtime < now - MH_QUOTA__STALE_S));
  if (rewrite)
    return mh_quota__maildirsize_write (maildir, bytes_limit, messages_limit,
                                        bytes, messages, error);
  gint64 db = (gint64) bytes - m.bytes, dm = (gint64) messages - m.messages;
  if (db == 0 && dm == 0)
    return TRUE;
  return mh_quota__maildirsize_append (maildir, db, dm, error);
}

/* Sums one new/ or cur/ directory. */
static gboolean
scan_dir (const char *dir, guint64 *bytes, guint64 *messages, GError **error)
{
  DIR *d = opendir (dir);
  if (d == NULL)
    {
      if (errno == ENOENT || errno == ENOTDIR)
        return TRUE;
      int e = errno;
      g_set_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_IO,
                   "cannot read %s: %s", dir, g_strerror (e));
      return FALSE;
    }
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      const char *name = de->d_name;
      if (name[0] == '.')
        continue;   /* ".", "..", and no Maildir message starts with '.' */
      const char *s = strstr (name, ",S=");
      gboolean have = FALSE;
      if (s != NULL)
        {
          s += 3;
          guint64 v = 0;
          const char *q = s;
          while (g_ascii_isdigit (*q) && v < G_MAXUINT64 / 10 - 10)
            v = v * 10 + (guint64) (*q++ - '0');
          if (q > s && (*q == '\0' || *q == ',' || *q == ':'))
            {
              *bytes += v;
              have = TRUE;
            }
        }
      if (!have)
        {
          struct stat st;
          g_autofree char *path = g_build_filename (dir, name, NULL);
          if (stat (path, &st) != 0)
            continue;   /* gone meanwhile (expunged or moved) */
          if (!S_ISREG (st.st_mode))
            continue;
          *bytes += (guint64) st.st_size;
        }
      (*messages)++;
    }
  closedir (d);
  return TRUE;
}

static gboolean
scan_folder (const char *folder, guint64 *bytes, guint64 *messages,
             GError **error)
{
  g_autofree char *n = g_build_filename (folder, "new", NULL);
  g_autofree char *c = g_build_filename (folder, "cur", NULL);
  return scan_dir (n, bytes, messages, error)
         && scan_dir (c, bytes, messages, error);
}

gboolean
mh_quota__maildir_scan (const char *maildir, guint64 *bytes_out,
                        guint64 *messages_out, GError **error)
{
  guint64 b = 0, m = 0;
  *bytes_out = *messages_out = 0;
  DIR *d = opendir (maildir);
  if (d == NULL)
    {
      if (errno == ENOENT)
        return TRUE;
      int e = errno;
      g_set_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_IO,
                   "cannot read %s: %s", maildir, g_strerror (e));
      return FALSE;
    }
  if (!scan_folder (maildir, &b, &m, error))
    {
      closedir (d);
      return FALSE;
    }
  struct dirent *de;
  gboolean ok = TRUE;
  while (ok && (de = readdir (d)) != NULL)
    {
      /* Maildir++ folders are ".Name" directories; "." and ".." are not. */
      if (de->d_name[0] != '.' || strcmp (de->d_name, ".") == 0
          || strcmp (de->d_name, "..") == 0)
        continue;
      g_autofree char *f = g_build_filename (maildir, de->d_name, NULL);
      if (g_file_test (f, G_FILE_TEST_IS_DIR))
        ok = scan_folder (f, &b, &m, error);
    }
  closedir (d);
  if (!ok)
    return FALSE;
  *bytes_out = b;
  *messages_out = m;
  return TRUE;
}
