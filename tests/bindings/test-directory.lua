-- The directory API through GObject introspection (LGI), against the
-- built library: a domain, a user, a password verified, errors as GError
-- in the Mailhost directory domain. Exits non-zero on the first failure.
local lgi = require 'lgi'
local GLib = lgi.GLib
local Mailhost = lgi.require('Mailhost', '1.0')

io.stdout:setvbuf('no')
local failures = 0
local function check(cond, what)
  if not cond then
    io.stderr:write('FAIL: ' .. what .. '\n')
    failures = failures + 1
  else
    print('ok: ' .. what)
  end
end

local tmp = GLib.dir_make_tmp('mh-lua-XXXXXX')
local dir, err = Mailhost.Directory.open(tmp)
assert(dir, err and err.message)

check(dir:domain_add('Bücher.Example'), 'domain_add')
check(dir:account_add('Bob@bücher.example', 'correct horse'), 'account_add')
check(dir:authenticate('bob@xn--bcher-kva.example', 'correct horse', 'imap'),
      'authenticate with the right password')

local ok, e = dir:authenticate('bob@bücher.example', 'wrong', nil)
check(not ok and e ~= nil, 'wrong password refused')
check(e and e:matches(Mailhost.directory_error_quark(),
                      Mailhost.DirectoryError.AUTH_FAILED),
      'wrong password gives AUTH_FAILED')

ok, e = dir:domain_add('exa mple.org')
check(not ok and e and e:matches(Mailhost.directory_error_quark(),
                                   Mailhost.DirectoryError.INVALID),
      'bad domain gives INVALID')
check(e and e.message:find('space', 1, true) ~= nil,
      'bad domain message names the problem')

local info = dir:account_lookup('BOB@bücher.example')
check(info and info:get_address() == 'bob@bücher.example',
      'account_lookup folds case and shows the U-label')
check(info and info:get_ascii_address() == 'bob@xn--bcher-kva.example',
      'ascii address is the A-label')

dir:account_add('alice@bücher.example', nil)
local list = dir:account_list('bücher.example')
check(list and #list == 2, 'account_list returns both accounts')
check(list and list[1]:get_address() == 'alice@bücher.example',
      'account_list is sorted')

check(dir:alias_add('info@bücher.example',
                    { 'bob@bücher.example', 'x@elsewhere.com' }),
      'alias_add with two targets')
local alias = dir:alias_lookup('info@bücher.example')
local targets = alias and alias:get_targets()
check(targets and #targets == 2 and targets[2] == 'x@elsewhere.com',
      'alias targets')

dir = nil
collectgarbage()
-- Remove the temporary data directory.
for _, name in ipairs({ 'directory.mdb', 'directory.mdb-lock' }) do
  os.remove(tmp .. '/' .. name)
end
os.remove(tmp)

if failures > 0 then
  os.exit(1)
end
print('all passed')
