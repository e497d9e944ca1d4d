Running 10s test @ http://127.0.0.1:18204/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    89.48ms  103.09ms 596.80ms   85.17%
    Req/Sec   282.43    430.18     1.26k    81.00%
  2814 requests in 10.00s, 605.06KB read
Requests/sec:    281.30
Transfer/sec:     60.48KB
