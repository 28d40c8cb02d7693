-- libmailhost's directory from Lua (LGI).
--
-- Run against a build tree:
--   GI_TYPELIB_PATH=build/lib LD_LIBRARY_PATH=build/lib lua5.1 examples/directory.lua
local lgi = require 'lgi'
local GLib = lgi.GLib
local Mailhost = lgi.require('Mailhost', '1.0')

local data_dir = arg[1] or GLib.dir_make_tmp('mailhost-example-XXXXXX')
local directory = assert(Mailhost.Directory.open(data_dir))

assert(directory:domain_add('bücher.example'))
assert(directory:account_add('anna@bücher.example', 'correct horse'))
assert(directory:alias_add('info@bücher.example', { 'anna@bücher.example' }))

for _, account in ipairs(directory:account_list('bücher.example')) do
  print(account:get_address() .. ' stored as ' .. account:get_ascii_address())
end

assert(directory:authenticate('anna@bücher.example', 'correct horse', 'imap'))
print('password verified')
local ok, err = directory:authenticate('anna@bücher.example', 'wrong', nil)
print('wrong password: ' .. err.message)

if not arg[1] then
  directory = nil
  collectgarbage()
  os.remove(data_dir .. '/directory.mdb')
  os.remove(data_dir .. '/directory.mdb-lock')
  os.remove(data_dir)
end
