// Child processes over Linux pidfds: see issue "Async fork and child processes over Linux pidfds".
