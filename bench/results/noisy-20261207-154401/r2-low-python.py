Running 10s test @ http://127.0.0.1:18204/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   106.68ms  123.83ms 749.89ms   85.20%
    Req/Sec   242.31    370.16     1.09k    80.00%
  2416 requests in 10.00s, 519.93KB read
Requests/sec:    241.48
Transfer/sec:     51.97KB
