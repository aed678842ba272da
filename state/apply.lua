-- fenqi state: apply a batch of events for a group of users in one call.
--
-- KEYS: 5 per user, in this order (all under the user's hash tag {u:ID}):
--   a  activity hash: "d<day>" daily and "m<yyyymm>" monthly buckets, and the
--      places of the last GEO days: "c:<city>" = last login day,
--      "d:<device>" = "lastday:logins"
--   m  meta hash: offsets per input topic "o<t>" = "partition:offset", tz, tzo, pd (pruned day)
--   x  "<payment times>|<dedup ring>": the event times of the user's latest
--      payments, newest first, 6 base-36 digits each; then the ring of the
--      user's last RING event ids (see ring_find)
--   p  latest profile (JSON string)
--   b  open bills hash: bill id = "remaining_fen:due_unix:timer_stage", or
--      "P<paid_fen>:<unix>" for a bill repaid before its due event arrived, or
--      "S<unix>" for a bill settled (both kept KEEPDAYS)
-- ARGV[1]: JSON {now, dz (default zone offset s), ring, fpl (fingerprint length),
--   days, months, geo (days), geomax, u = [[event, ...] per user in KEYS order]}
--   event: {t topic index, p partition, o offset (-1 = none), f fingerprint, k kind,
--           ts unix s, a amount fen, c class 0 spend/1 social/2 finance,
--           dv device, ci city, b bill, due unix, pr profile JSON, tz name, tzo offset,
--           lim transaction limit fen, jd judicial defaulter 0/1}
-- Meta also holds: lo (latest other-city login, unix), lp (the LPN before it,
--   base-36, newest first), lim (own limit, fen),
--   fz (1 = frozen for overdue), fj (1 = frozen as judicial defaulter),
--   oe (overdue episodes settled, lifetime), oh (recent settled episodes
--   "dueDay:daysOverdue,..." within req.ohdays days).
-- Returns JSON: per user {tz, lim, [[status, newCity, newDevice, lastOtherCityLogin,
--   recentPayments (the v string before the event; payments only), flags
--   (, lim, tz the event was applied under: when the batch holds a profile)], ...]}
--   flags: 1 = this event unfroze the user (last overdue bill settled),
--          2 = this profile made the user a judicial defaulter (was not),
--          4 = this profile cleared the judicial flag (was set).
--   status 0 applied, 1 redelivered (offset already applied), 2 duplicate id.
local req = cjson.decode(ARGV[1])
local floor = math.floor
local now = req.now
local DAYS, MONTHS, GEO, GEOMAX = req.days, req.months, req.geo, req.geomax
local RING, FPL = req.ring, req.fpl
local VEL, OHDAYS = req.vel, req.ohdays

local B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
local function b36(n) -- fixed 6 digits: unix seconds up to 2^31 fit
  local t = {}
  for i = 6, 1, -1 do
    local d = n % 36
    t[i] = string.sub(B36, d + 1, d + 1)
    n = floor(n / 36)
  end
  return table.concat(t)
end

-- civil month (yyyymm) and day of the month of a day number (days since
-- 1970-01-01), after Howard Hinnant's civil_from_days
local function yyyymm(day)
  local z = day + 719468
  local era = floor(z / 146097)
  local doe = z - era * 146097
  local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
  local mp = floor((5 * doy + 2) / 153)
  local d = doy - floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y * 100 + m, d
end
local function midx(ym) return floor(ym / 100) * 12 + (ym % 100) - 1 end

-- Buckets are read and written with one C call each (a pattern with a
-- capture per counter, one format): string calls are what a script's time
-- goes to. Counters stay strings until arithmetic coerces them.
local PAT = {[7] = "^(%d+):(%d+):(%d+):(%d+):(%d+):(%d+):(%d+)$",
             [9] = "^(%d+):(%d+):(%d+):(%d+):(%d+):(%d+):(%d+):(%d+):(%d+)$"}
local FMT = {[7] = "%d:%d:%d:%d:%d:%d:%d", [9] = "%d:%d:%d:%d:%d:%d:%d:%d:%d"}
local function unpack_counts(s, n)
  local t
  if s then
    t = {string.match(s, PAT[n])}
    if #t == n then return t end
    -- another length (a bucket written by an older layout): field by field
    t = {}
    for v in string.gmatch(s, "[^:]+") do
      if #t < n then t[#t + 1] = tonumber(v) or 0 end
    end
  else
    t = {}
  end
  for i = #t + 1, n do t[i] = 0 end
  return t
end
local function pack_counts(t)
  return string.format(FMT[#t], unpack(t))
end

-- bucket layout: 1 spend n, 2 spend fen, 3 social n, 4 social fen,
-- 5 finance n, 6 finance fen, 7 logins; months also 8 login days and
-- 9 the login days as a bit mask (bit d-1 for day d), so that a late login
-- counts its day once even when the daily bucket is gone
local DAYN, MONN = 7, 9

-- Each dedup ring entry is the id's fingerprint (FPL characters), one
-- base-36 digit of the facts the event had when applied (1 new city,
-- 2 new device, 4 unfroze, 8 became judicial defaulter, 16 cleared it) and
-- one of how many earlier payment times it saw, so that a redelivered
-- event gets the same facts, and so the same decisions, as the first time.
local ENL = FPL + 2

-- The other-city logins before the latest (meta lp, LPN base-36 times,
-- newest first): a redelivered payment finds the one that preceded it
-- even when a later one has been applied since.
local LPN = 4

-- A settled bill stays in the bills hash as "S<unix>" (when it was
-- settled) and a bill paid before its due event as "P<paid>:<unix>", for
-- KEEPDAYS: a due event re-sent after settlement must not open the bill
-- again, and a due event late by less than that still finds its payment.
local KEEPDAYS = 90
local function prune_bills(kb)
  local bills = redis.call("HGETALL", kb)
  for i = 2, #bills, 2 do
    local ts = string.match(bills[i], "^S(%d+)$") or string.match(bills[i], "^P%d+:(%d+)$")
    if ts and tonumber(ts) < now - KEEPDAYS * 86400 then redis.call("HDEL", kb, bills[i - 1]) end
  end
end
local function settle(kb, bill)
  prune_bills(kb)
  redis.call("HSET", kb, bill, "S" .. string.format("%.0f", now))
end
local function lo_at(lo, lp, ts)
  if lo <= ts then return lo end
  for i = 1, #lp, 6 do
    local t = tonumber(string.sub(lp, i, i + 5), 36)
    if t <= ts then return t end
  end
  return 0
end
local function ring_find(ring, f)
  local init = 1
  while true do
    local s = string.find(ring, f, init, true)
    if not s then return nil end
    if (s - 1) % ENL == 0 then return s end
    init = s + 1
  end
end

local out = {}
local ki = 0
for _, evs in ipairs(req.u) do
  local ka, km, kx, kp, kb = KEYS[ki + 1], KEYS[ki + 2], KEYS[ki + 3], KEYS[ki + 4], KEYS[ki + 5]
  ki = ki + 5
  local meta = redis.call("HMGET", km, "tzo", "tz", "pd", "o1", "o2", "o3", "o4", "lo", "lim", "fz", "fj", "lp")
  local lo = tonumber(meta[8]) or 0
  local lp = meta[12] or ""
  local lo0, lp0 = lo, lp
  local lim = tonumber(meta[9]) or 0
  local fz, fj = meta[10] == "1", meta[11] == "1"
  local tzo = tonumber(meta[1]) or req.dz
  local tz = meta[2] or ""
  local today = floor((now + tzo) / 86400)
  local curm = midx(yyyymm(today))
  -- last applied offset per topic index: {partition, offset}
  local offs, offs_dirty = {}, {}
  for t = 1, 4 do
    local v = meta[3 + t]
    if v then
      local lp, lo = string.match(v, "^(%-?%d+):(%-?%d+)$")
      offs[t] = {tonumber(lp), tonumber(lo)}
    end
  end

  local mupd = {} -- meta fields to write at the end, in one HSET
  -- places in the activity hash, and whether any device / city is among
  -- them; nil = not looked at yet (anyplace looks when needed)
  local geolen, anyd, anyc = -1, nil, nil

  -- prune once per local day: old buckets and places not seen in GEO days
  if tonumber(meta[3] or "0") < today then
    local all = redis.call("HGETALL", ka)
    local del = {}
    geolen, anyd, anyc = 0, false, false
    for i = 1, #all, 2 do
      local f = all[i]
      if string.sub(f, 2, 2) == ":" then
        if tonumber(string.match(all[i + 1], "^%d+")) <= today - GEO then
          del[#del + 1] = f
        else
          geolen = geolen + 1
          if string.sub(f, 1, 1) == "d" then anyd = true else anyc = true end
        end
      else
        local kind, n = string.sub(f, 1, 1), tonumber(string.sub(f, 2))
        if (kind == "d" and n <= today - DAYS) or (kind == "m" and midx(n) < curm - MONTHS) then
          del[#del + 1] = f
        end
      end
    end
    if #del > 0 then redis.call("HDEL", ka, unpack(del)) end
    mupd[#mupd + 1] = "pd"
    mupd[#mupd + 1] = today
  end

  local x = redis.call("GET", kx) or "|"
  local bar = string.find(x, "|", 1, true) or 0
  local vel, ring = string.sub(x, 1, bar - 1), string.sub(x, bar + 1)
  local vel0, ring0 = vel, ring
  -- has the user a place of this kind ("d:" or "c:")? counts the places too
  local function anyplace(prefix)
    if anyd == nil then
      anyd, anyc, geolen = false, false, 0
      for _, f in ipairs(redis.call("HKEYS", ka)) do
        local p = string.sub(f, 1, 2)
        if p == "d:" then anyd, geolen = true, geolen + 1
        elseif p == "c:" then anyc, geolen = true, geolen + 1 end
      end
    end
    if prefix == "d:" then return anyd end
    return anyc
  end
  local res = {}
  -- The events run under pcall: should one fail, the offsets and ring of
  -- the events already applied are still written below before the error
  -- is raised, so that applying them again (one at a time) finds them
  -- applied rather than counting them twice.
  -- a profile in the batch may change the user's limit and zone: each
  -- event then also reports the values it was applied under
  local perevent = false
  for _, e in ipairs(evs) do
    if e.k == "prof" then perevent = true end
  end
  local ok, perr = pcall(function()
  for _, e in ipairs(evs) do
    local status, nc, nd, flags = 0, 0, 0, 0
    local lim_ev, tz_ev = lim, tz
    -- the latest other-city login before the event (a later one may have
    -- been applied first: logins and payments come on different topics)
    local lo_before, recent = lo_at(lo, lp, e.ts), ""
    if e.o >= 0 then
      local last = offs[e.t]
      if last and last[1] == e.p and e.o <= last[2] then status = 1 end
    end
    local at = ring_find(ring, e.f)
    if status == 1 then
      -- a redelivery: the facts it had the first time, from its ring entry;
      -- an event older than the ring (a user with more than RING events
      -- not yet committed) still gets what state shows: the payment times
      -- before it and the other-city login before it, not new places
      local seen = VEL
      if at then
        local bits = tonumber(string.sub(ring, at + FPL, at + FPL), 36) or 0
        seen = tonumber(string.sub(ring, at + FPL + 1, at + FPL + 1), 36) or 0
        nc, nd, flags = bits % 2, floor(bits / 2) % 2, floor(bits / 4)
      end
      if e.k == "pay" then
        -- the payment times at or before this one (less its own), newest
        -- first, as many as it saw the first time
        local stamp, own = b36(e.ts), false
        local older = {}
        for i = 1, #vel, 6 do
          local st = string.sub(vel, i, i + 5)
          if st == stamp and not own then own = true
          elseif st <= stamp and #older < seen then older[#older + 1] = st end
        end
        recent = table.concat(older)
      end
    end
    if status == 0 and at then status = 2 end
    if status == 0 then
      local day = floor((e.ts + tzo) / 86400)
      local ym, dom = yyyymm(day)
      local inday = day > today - DAYS and day <= today + 1
      local inmonth = midx(ym) >= curm - MONTHS
      local k = e.k
      if k == "pay" or k == "login" then
        local dkey, mkey = "d" .. day, "m" .. ym
        local df = (e.dv and e.dv ~= "") and ("d:" .. e.dv) or "-"
        local cf = (k == "login" and e.ci and e.ci ~= "") and ("c:" .. e.ci) or "-"
        local cur = redis.call("HMGET", ka, dkey, mkey, df, cf)
        local dv = inday and unpack_counts(cur[1], DAYN)
        local mv = inmonth and unpack_counts(cur[2], MONN)
        if k == "pay" then
          -- the payment-times ring, newest first, kept in time order
          recent = vel
          local stamp = b36(e.ts)
          local pos = 1
          while pos < #vel and string.sub(vel, pos, pos + 5) > stamp do pos = pos + 6 end
          vel = string.sub(vel, 1, pos - 1) .. stamp .. string.sub(vel, pos)
          if #vel > VEL * 6 then vel = string.sub(vel, 1, VEL * 6) end
          local i = e.c * 2 + 1
          if dv then dv[i] = dv[i] + 1; dv[i + 1] = dv[i + 1] + e.a end
          if mv then mv[i] = mv[i] + 1; mv[i + 1] = mv[i + 1] + e.a end
        else
          if dv then dv[7] = dv[7] + 1 end
          if mv then
            mv[7] = mv[7] + 1
            local bit = 2 ^ (dom - 1)
            if floor(mv[9] / bit) % 2 == 0 then
              mv[9] = mv[9] + bit
              mv[8] = mv[8] + 1
            end
          end
        end
        local upd = {}
        if dv then upd[#upd + 1] = dkey; upd[#upd + 1] = pack_counts(dv) end
        if mv then upd[#upd + 1] = mkey; upd[#upd + 1] = pack_counts(mv) end

        -- devices and cities of the last GEO days before the event;
        -- "new" only for a user with history of that kind
        local since = day - GEO
        if df ~= "-" then
          local last, n = 0, 0
          if cur[3] then
            local a, b = string.match(cur[3], "^(%d+):(%d+)$")
            last, n = tonumber(a), tonumber(b)
          end
          if last <= since then
            if anyplace("d:") then nd = 1 end
            if not cur[3] then geolen = geolen + 1; anyd = true end
          end
          if k == "login" then n = n + 1 end
          upd[#upd + 1] = df
          upd[#upd + 1] = (day > last and day or last) .. ":" .. n
        end
        if cf ~= "-" then
          local last = tonumber(cur[4] or "-1")
          if last <= since then
            if last >= 0 or anyplace("c:") then nc = 1 end
            if last < 0 then geolen = geolen + 1; anyc = true end
          end
          if day > last then
            upd[#upd + 1] = cf
            upd[#upd + 1] = day
          end
          if nc == 1 and e.ts > lo then
            if lo > 0 then lp = string.sub(b36(lo) .. lp, 1, LPN * 6) end
            lo = e.ts
          end
        end
        if #upd > 0 then redis.call("HSET", ka, unpack(upd)) end
        if geolen > GEOMAX then
          -- keep the places bounded: drop the one seen longest ago
          local all = redis.call("HGETALL", ka)
          local oldf, oldd = nil, nil
          for i = 1, #all, 2 do
            if string.sub(all[i], 2, 2) == ":" then
              local d = tonumber(string.match(all[i + 1], "^%d+"))
              if not oldd or d < oldd then oldf, oldd = all[i], d end
            end
          end
          redis.call("HDEL", ka, oldf)
          geolen = geolen - 1
        end
      elseif k == "due" then
        -- a due event for a bill already open (an upstream re-send) keeps
        -- what was paid of it and its timer stage; one paid before it
        -- (billing and payment systems upstream may send the two in either
        -- order) counts against the amount
        local cur = redis.call("HGET", kb, e.b)
        local rem, stage = string.format("%.0f", e.a), "0"
        if cur and string.sub(cur, 1, 1) == "S" then
          rem = nil -- settled already: a re-send opens nothing
        elseif cur and string.sub(cur, 1, 1) == "P" then
          local left = e.a - tonumber(string.match(cur, "^P(%d+)"))
          if left <= 0 then
            settle(kb, e.b) -- settled before it was due
            rem = nil
          else
            rem = string.format("%.0f", left)
          end
        elseif cur then
          rem, stage = string.match(cur, "^(%-?%d+):%-?%d+:(%d+)$")
        end
        if rem then redis.call("HSET", kb, e.b, rem .. ":" .. string.format("%.0f", e.due) .. ":" .. stage) end
      elseif k == "paid" then
        local cur = redis.call("HGET", kb, e.b)
        if cur and string.sub(cur, 1, 1) == "S" then
          -- settled already: an overpayment or a re-send owes nothing
        elseif not cur or string.sub(cur, 1, 1) == "P" then
          -- paid before the bill's due event arrived: kept as "P<paid>:<time>"
          -- until it does (see KEEPDAYS)
          local paid = e.a
          if cur then
            paid = paid + tonumber(string.match(cur, "^P(%d+)"))
          else
            prune_bills(kb)
          end
          redis.call("HSET", kb, e.b, "P" .. string.format("%.0f", paid) .. ":" .. string.format("%.0f", now))
        else
          local rem, due, stage = string.match(cur, "^(%-?%d+):(%-?%d+):(%d+)$")
          rem = tonumber(rem) - e.a
          if rem <= 0 then
            settle(kb, e.b)
            -- a settled bill that was overdue is an episode of the history
            local od = floor((e.ts - tonumber(due)) / 86400)
            if od >= 1 then
              local dueday = floor((tonumber(due) + tzo) / 86400)
              local hist = redis.call("HGET", km, "oh") or ""
              local keep = {}
              for dd, n in string.gmatch(hist, "(%d+):(%d+)") do
                if tonumber(dd) > today - OHDAYS then keep[#keep + 1] = dd .. ":" .. n end
              end
              keep[#keep + 1] = dueday .. ":" .. od
              redis.call("HSET", km, "oh", table.concat(keep, ","))
              redis.call("HINCRBY", km, "oe", 1)
            end
            -- unfreeze when no bill is overdue any more
            if fz then
              local still = false
              local bills = redis.call("HGETALL", kb)
              for i = 2, #bills, 2 do
                local d = tonumber(string.match(bills[i], "^%-?%d+:(%-?%d+)"))
                if d and d < now then still = true; break end -- d nil: paid before due, not open
              end
              if not still then
                fz = false
                redis.call("HSET", km, "fz", "0")
                flags = flags + 1
              end
            end
          else
            redis.call("HSET", kb, e.b, string.format("%.0f", rem) .. ":" .. due .. ":" .. stage)
          end
        end
      elseif k == "prof" then
        redis.call("SET", kp, e.pr)
        tz, tzo = e.tz or "", e.tzo or 0
        lim = e.lim or 0
        local jd = e.jd == 1
        if jd and not fj then flags = flags + 2 end
        if fj and not jd then flags = flags + 4 end
        fj = jd
        redis.call("HSET", km, "tz", tz, "tzo", tzo, "lim", lim, "fj", jd and "1" or "0")
      end
      local bits, seen = nc + 2 * nd + 4 * flags, #recent / 6
      ring = ring .. e.f .. string.sub(B36, bits + 1, bits + 1) .. string.sub(B36, seen + 1, seen + 1)
    end
    if e.o >= 0 and status ~= 1 then
      offs[e.t] = {e.p, e.o}
      offs_dirty[e.t] = true
    end
    if perevent then
      res[#res + 1] = {status, nc, nd, lo_before, recent, flags, string.format("%.0f", lim_ev), tz_ev}
    else
      res[#res + 1] = {status, nc, nd, lo_before, recent, flags}
    end
  end
  end)
  for t, _ in pairs(offs_dirty) do
    mupd[#mupd + 1] = "o" .. t
    mupd[#mupd + 1] = offs[t][1] .. ":" .. string.format("%.0f", offs[t][2])
  end
  if lo ~= lo0 then
    mupd[#mupd + 1] = "lo"
    mupd[#mupd + 1] = string.format("%.0f", lo)
  end
  if lp ~= lp0 then
    mupd[#mupd + 1] = "lp"
    mupd[#mupd + 1] = lp
  end
  if #mupd > 0 then redis.call("HSET", km, unpack(mupd)) end
  if vel ~= vel0 or ring ~= ring0 then
    if #ring > RING * ENL then ring = string.sub(ring, #ring - RING * ENL + 1) end
    redis.call("SET", kx, vel .. "|" .. ring)
  end
  if not ok then error(perr) end
  -- numbers leave the script as strings: a reply keeps only 14 digits
  out[#out + 1] = {tz, string.format("%.0f", lim), res}
end
return cjson.encode(out)
