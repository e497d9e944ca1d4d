Running 10s test @ http://127.0.0.1:18205/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    92.69ms  105.67ms 586.35ms   84.12%
    Req/Sec   274.80    415.91     1.16k    80.00%
  2735 requests in 10.01s, 589.11KB read
Requests/sec:    273.26
Transfer/sec:     58.86KB
