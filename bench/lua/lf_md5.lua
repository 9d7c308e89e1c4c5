-- Benchmark peer: the legacy x-lf-md5 check in Envoy's Lua filter (LuaJIT), written to be fair:
-- same rules as lf-webhook-guard for the benchmark bodies (flat JSON object; string values
-- decoded incl. simple escapes; numbers/true/false as literal text; null/"" as empty; keys
-- sorted byte-wise; duplicate keys rejected), reasonably optimised (one body read, string.find
-- scanning, table.concat, LuaJIT `bit` ops for MD5). Envoy's Lua API has no MD5 (only
-- base64Escape and RSA verifySignature), so MD5 is pure Lua here. Not hardened: the comparison
-- is not constant-time, form bodies, the size limit and the many edge rules are left out.
local bit = require("bit")
local band, bor, bxor, bnot = bit.band, bit.bor, bit.bxor, bit.bnot
local lshift, rol, tobit, tohex, bswap = bit.lshift, bit.rol, bit.tobit, bit.tohex, bit.bswap
local byte, sub, find, char, rep = string.byte, string.sub, string.find, string.char, string.rep
local concat, sort = table.concat, table.sort

local SECRET = os.getenv("LF_WEBHOOK_SECRET") or "bench-secret-0123=xyz"
local PREFIX = "/linksfield/"

local K, S = {}, {}
for i = 0, 63 do
  K[i] = tobit(math.floor(math.abs(math.sin(i + 1)) * 4294967296))
end
local shifts = { { 7, 12, 17, 22 }, { 5, 9, 14, 20 }, { 4, 11, 16, 23 }, { 6, 10, 15, 21 } }
for i = 0, 63 do
  S[i] = shifts[math.floor(i / 16) + 1][i % 4 + 1]
end
local G = {}
for i = 0, 63 do
  if i < 16 then G[i] = i
  elseif i < 32 then G[i] = (5 * i + 1) % 16
  elseif i < 48 then G[i] = (3 * i + 5) % 16
  else G[i] = (7 * i) % 16 end
end

local X = {}
local function md5hex(msg)
  local len = #msg
  local pad = (55 - len) % 64
  local bits = len * 8
  msg = msg .. "\128" .. rep("\0", pad)
    .. char(band(bits, 255), band(bit.rshift(bits, 8), 255), band(bit.rshift(bits, 16), 255),
            band(bit.rshift(bits, 24), 255), 0, 0, 0, 0)
  local a0, b0, c0, d0 = 0x67452301, tobit(0xefcdab89), tobit(0x98badcfe), 0x10325476
  for off = 1, #msg, 64 do
    for j = 0, 15 do
      local p = off + j * 4
      local w1, w2, w3, w4 = byte(msg, p, p + 3)
      X[j] = bor(w1, lshift(w2, 8), lshift(w3, 16), lshift(w4, 24))
    end
    local a, b, c, d = a0, b0, c0, d0
    for i = 0, 63 do
      local f
      if i < 16 then f = bor(band(b, c), band(bnot(b), d))
      elseif i < 32 then f = bor(band(d, b), band(bnot(d), c))
      elseif i < 48 then f = bxor(b, c, d)
      else f = bxor(c, bor(b, bnot(d))) end
      local t = d
      d = c
      c = b
      b = tobit(b + rol(tobit(a + f + K[i] + X[G[i]]), S[i]))
      a = t
    end
    a0, b0, c0, d0 = tobit(a0 + a), tobit(b0 + b), tobit(c0 + c), tobit(d0 + d)
  end
  return tohex(bswap(a0)) .. tohex(bswap(b0)) .. tohex(bswap(c0)) .. tohex(bswap(d0))
end

local ESC = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function utf8(cp)
  if cp < 0x80 then return char(cp) end
  if cp < 0x800 then return char(0xC0 + bit.rshift(cp, 6), 0x80 + band(cp, 0x3F)) end
  return char(0xE0 + bit.rshift(cp, 12), 0x80 + band(bit.rshift(cp, 6), 0x3F), 0x80 + band(cp, 0x3F))
end

-- Parse a JSON string starting at the opening quote at `i`; returns value, next index.
local function jstring(s, i)
  local j = i + 1
  local parts
  while true do
    local q = find(s, '["\\]', j)
    if not q then return nil end
    if byte(s, q) == 34 then -- closing quote
      if not parts then return sub(s, i + 1, q - 1), q + 1 end
      parts[#parts + 1] = sub(s, j, q - 1)
      return concat(parts), q + 1
    end
    parts = parts or {}
    parts[#parts + 1] = sub(s, j, q - 1)
    local e = sub(s, q + 1, q + 1)
    if e == "u" then
      local cp = tonumber(sub(s, q + 2, q + 5), 16)
      if not cp then return nil end
      parts[#parts + 1] = utf8(cp)
      j = q + 6
    else
      local r = ESC[e]
      if not r then return nil end
      parts[#parts + 1] = r
      j = q + 2
    end
  end
end

-- Flat JSON object -> sorted "k=v&...&" list; nil on anything else.
local function canonical(s)
  local _, i = find(s, "^%s*{%s*")
  if not i then return nil end
  i = i + 1
  local keys, vals, n = {}, {}, 0
  while true do
    if byte(s, i) ~= 34 then return nil end
    local k, v
    k, i = jstring(s, i)
    if not k or k == "" or vals[k] then return nil end
    local _, e = find(s, "^%s*:%s*", i)
    if not e then return nil end
    i = e + 1
    local c = byte(s, i)
    if c == 34 then
      v, i = jstring(s, i)
      if not v then return nil end
    elseif c == 123 or c == 91 then
      return nil -- nested: rejected, as lf-webhook-guard's default
    else
      local a, b = find(s, "^[%w%.%+%-]+", i)
      if not a then return nil end
      v = sub(s, a, b)
      if v == "null" then v = "" end
      i = b + 1
    end
    n = n + 1
    keys[n] = k
    vals[k] = v
    local _, e2 = find(s, "^%s*", i)
    i = e2 + 1
    c = byte(s, i)
    if c == 44 then
      _, e2 = find(s, "^%s*", i + 1)
      i = e2 + 1
    elseif c == 125 then
      if find(s, "^%s*$", i + 1) then break end
      return nil
    else
      return nil
    end
  end
  sort(keys)
  local out = {}
  for j = 1, n do
    local k = keys[j]
    out[j] = k .. "=" .. vals[k]
  end
  return concat(out, "&")
end

local function deny(h, status, err)
  h:respond({ [":status"] = status, ["content-type"] = "application/json" },
    '{"error":"' .. err .. '"}')
end

function envoy_on_request(h)
  local headers = h:headers()
  headers:remove("x-lf-verified")
  local path = headers:get(":path")
  if not path or sub(path, 1, #PREFIX) ~= PREFIX then return end
  if headers:get(":method") ~= "POST" then return deny(h, "405", "method_not_allowed") end
  local sig = headers:get("x-lf-md5")
  if not sig then return deny(h, "401", "missing_signature") end
  local ct = headers:get("content-type") or ""
  if sub(ct, 1, 16) ~= "application/json" then return deny(h, "415", "unsupported_media_type") end
  local body = h:body()
  if not body then return deny(h, "400", "malformed_body") end
  local text = canonical(body:getBytes(0, body:length()))
  if not text then return deny(h, "400", "malformed_body") end
  local expected = h:base64Escape(md5hex(text .. "&" .. SECRET))
  if expected ~= sig then return deny(h, "401", "invalid_signature") end
  headers:add("x-lf-verified", "md5; key=bench")
end
