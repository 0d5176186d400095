import sys
print(open(sys.argv[1]).read())
open(sys.argv[2],'w').write(open(sys.argv[1]).read())
