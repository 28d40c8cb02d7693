/* libmailhost's directory from C: a domain, a user, a password check.
 *
 *   build/examples/directory-example DATA_DIR
 */
#include <mailhost/mailhost.h>

#include <stdio.h>

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  if (argc != 2)
    {
      fprintf (stderr, "usage: %s DATA_DIR\n", argv[0]);
      return 1;
    }
  g_autoptr (MhDirectory) dir = mh_directory_open (argv[1], &error);
  if (dir == NULL
      || !mh_directory_domain_add (dir, "bücher.example", &error)
      || !mh_directory_account_add (dir, "anna@bücher.example",
                                    "correct horse", &error))
    {
      fprintf (stderr, "%s\n", error->message);
      return 1;
    }

  g_autoptr (MhAccountInfoList) accounts
      = mh_directory_account_list (dir, "bücher.example", &error);
  for (guint i = 0; accounts && i < accounts->len; i++)
    printf ("%s stored as %s\n",
            mh_account_info_get_address (accounts->pdata[i]),
            mh_account_info_get_ascii_address (accounts->pdata[i]));

  if (mh_directory_authenticate (dir, "anna@bücher.example", "correct horse",
                                 "imap", &error))
    printf ("password verified\n");
  if (!mh_directory_authenticate (dir, "anna@bücher.example", "wrong", NULL,
                                  &error))
    printf ("wrong password: %s\n", error->message);
  return 0;
}
