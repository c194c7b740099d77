%{ if on ~}
  on
%{~ else ~}
  off
%{~ endif }
