-- Open-loop load for wrk 4 (LuaJIT), driven by serving/loadgen.py; not meant to be run by hand.
--
-- wrk alone is closed-loop: a connection sends its next request when the previous answer arrives,
-- so a stalled server slows the client down and the stall never shows in the latencies
-- ("coordinated omission"). Here the requests follow a fixed schedule instead: request n of the
-- run is due at start + n / rate (the threads interleave their slots). delay() makes a free
-- connection wait for the next unclaimed slot (or send at once when the slot is already late),
-- and every latency is measured from the slot's *due* time, not from when it was sent (as wrk2
-- does). The X-Request-Id header carries "<thread>-<slot>"; the API echoes it, which ties each
-- answer to its slot whatever connection it came back on.
--
-- Arguments (after `--`): start_us rate seconds threads requests_file out_prefix token [idem_prefix]
--   start_us       CLOCK_MONOTONIC microseconds of slot 0 (shared by all threads)
--   rate           requests per second over all threads
--   requests_file  one request per line: "<path>\t<json body>"; each slot picks one at random
--   out_prefix     each thread writes <out_prefix>.<thread>: "S slot due_us sent_us line" when a
--                  request is sent (line: 0-based in requests_file), "R slot recv_us status" when its
--                  answer arrives, and creates <out_prefix>.done.<thread> once every slot is answered
--   idem_prefix    when given, each request gets "Idempotency-Key: <idem_prefix>-<thread>-<slot>"

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } lx_timespec;
int clock_gettime(int clk_id, lx_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("lx_timespec")

local function now_us()
    ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
    return tonumber(timespec.tv_sec) * 1000000 + math.floor(tonumber(timespec.tv_nsec) / 1000)
end

local thread_count = 0

function setup(thread)
    thread:set("tid", thread_count)
    thread_count = thread_count + 1
end

local start_us, interval_us, slots, threads
local lines, out, headers, idem_prefix
local claimed = {}          -- slots claimed by delay(), in order, not yet sent
local head, tail = 1, 0
local next_slot = 0
local answered = 0
local done_file

function init(args)
    start_us = tonumber(args[1])
    local rate = tonumber(args[2])
    local seconds = tonumber(args[3])
    threads = tonumber(args[4])
    interval_us = 1000000 * threads / rate                -- between this thread's slots
    slots = math.floor(rate * seconds / threads)          -- this thread's share of the schedule
    lines = {}
    for line in io.lines(args[5]) do
        local tab = line:find("\t", 1, true)
        lines[#lines + 1] = { line:sub(1, tab - 1), line:sub(tab + 1) }
    end
    out = io.open(args[6] .. "." .. tid, "w")
    done_file = args[6] .. ".done." .. tid
    out:setvbuf("full", 65536)
    headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. args[7] }
    idem_prefix = args[8]
    math.randomseed(1000 + tid)
end

local function due_of(slot)
    return start_us + (slot + tid / threads) * interval_us
end

function delay()
    if next_slot >= slots then
        return 3600 * 1000                                -- schedule done: idle until wrk stops
    end
    local slot = next_slot
    next_slot = next_slot + 1
    tail = tail + 1
    claimed[tail] = slot
    local wait_us = due_of(slot) - now_us()
    if wait_us <= 0 then
        return 0
    end
    return math.ceil(wait_us / 1000)                      -- wrk's timer has millisecond resolution
end

function request()
    local slot = claimed[head]
    if slot == nil then                                   -- wrk's one probe call at thread start,
        return wrk.format("GET", "/healthz")              -- before any connection: never sent
    end
    claimed[head] = nil
    head = head + 1
    local sent = now_us()
    local line = math.random(#lines)
    local pick = lines[line]
    out:write("S ", slot, " ", math.floor(due_of(slot)), " ", sent, " ", line - 1, "\n")
    headers["X-Request-Id"] = tid .. "-" .. slot
    if idem_prefix then
        headers["Idempotency-Key"] = idem_prefix .. "-" .. tid .. "-" .. slot
    end
    return wrk.format("POST", pick[1], headers, pick[2])
end

function response(status, hdrs, body)
    local recv = now_us()
    local id = hdrs["X-Request-Id"] or hdrs["x-request-id"] or "?-?"
    local slot = id:match("^%d+%-(%d+)$") or "?"
    out:write("R ", slot, " ", recv, " ", status, "\n")
    answered = answered + 1
    if answered == slots then                             -- every slot answered: tell the driver,
        out:flush()                                       -- which stops wrk before its duration ends
        io.open(done_file, "w"):close()
    end
end
