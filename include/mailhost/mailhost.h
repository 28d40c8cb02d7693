/* libmailhost: the whole public API. */
#pragma once

#define MH_INSIDE_MAILHOST_H 1
#include <mailhost/core.h>
#include <mailhost/limits.h>
/* layers: keep in DESIGN.md order */
#include <mailhost/directory.h>
#include <mailhost/resolve.h>
#include <mailhost/store.h>
#include <mailhost/quota.h>
#include <mailhost/auth.h>
#include <mailhost/smtp.h>
#include <mailhost/delivery.h>
#include <mailhost/server.h>
#include <mailhost/lmtp.h>
#undef MH_INSIDE_MAILHOST_H
