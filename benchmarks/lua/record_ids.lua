-- wrk script for the crash-durability benchmark: POST the JSON body read from the file named by the
-- first script argument and append every acknowledgement to the file named by the second:
--   "+ <id> <id> ..."  for each 2xx answer (the prediction ids it acknowledged),
--   "! <status>"       for each other answer.
-- Each line is flushed as it is written, so a line is on disk whatever happens to the server.
-- Usage: wrk -t1 -s record_ids.lua http://127.0.0.1:PORT/predict -- body.json acks.txt

local out

function init(args)
   local body_path, out_path = args[1], args[2]
   if body_path == nil or out_path == nil then
      error("record_ids.lua needs the body file and the output file as arguments")
   end
   local file = assert(io.open(body_path, "rb"))
   wrk.body = file:read("*a")
   file:close()
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   out = assert(io.open(out_path, "a"))
end

function response(status, headers, body)
   if status >= 200 and status < 300 then
      local ids = {}
      for id in string.gmatch(body, '"id":%s*"([^"]+)"') do
         ids[#ids + 1] = id
      end
      out:write("+ " .. table.concat(ids, " ") .. "\n")
   else
      out:write("! " .. status .. "\n")
   end
   out:flush()
end
