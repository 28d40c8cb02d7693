/* libmailhost: the whole public API. */
#pragma once

#include <mailhost/core.h>
#include <mailhost/limits.h>
/* layers: keep in DESIGN.md order */
#include <mailhost/directory.h>
#include <mailhost/resolve.h>
#include <mailhost/store.h>
#include <mailhost/quota.h>
#include <mailhost/auth.h>
#include <mailhost/smtp.h>
#include <mailhost/imap.h>
#include <mailhost/delivery.h>
#include <mailhost/server.h>
#include <mailhost/lmtp.h>
#include <mailhost/imapd.h>
#include <mailhost/retention.h>
