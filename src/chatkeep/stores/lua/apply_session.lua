-- Applies one session's writes, computed by the caller, if the session is as it read it.
--
-- KEYS[1]: the session's record; KEYS[2]: its advisory write lock.
-- ARGV[1]: "1" if the caller read a record, "0" if it found none;
-- ARGV[2]: the record's bytes as read ("" when none);
-- ARGV[3...]: the writes, each as its number of words, then the words.
--
-- Returns 1 once every write is done; 0, having written nothing, if the record is not
-- the one read or a transaction holds the session's lock. The rules live with the
-- caller: this only checks and applies.
local record = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if record ~= ARGV[2] then
    return 0
  end
elseif record then
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
local i, n = 3, #ARGV
while i <= n do
  local words = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + words))
  i = i + words + 1
end
return 1
