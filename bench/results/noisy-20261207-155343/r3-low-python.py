Running 10s test @ http://127.0.0.1:18204/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    94.94ms  107.18ms 630.38ms   84.34%
    Req/Sec   259.32    398.17     1.16k    81.00%
  2584 requests in 10.00s, 555.90KB read
Requests/sec:    258.28
Transfer/sec:     55.56KB
